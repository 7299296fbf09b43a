"""Bridging CLIP's modality gap between the text embeddings a decoder is trained on and the
image embeddings it reads at run time.

Two tools, both from the NOVIC recipe:
1. Noise (always, in training; trainer.add_noise): Gaussian noise of norm `noise` added to each
   unit text embedding, then renormalised, so the decoder answers for a neighbourhood of each
   prompt rather than the exact point. Image embeddings land in that neighbourhood.
2. Mean shift (optional, after training): image and text embeddings of CLIP sit in two cones with
   different centroids. Given a few *unlabelled* images from the target domain, the decoder
   adds (text centroid - image centroid) to every embedding before decoding (the decoder's
   `input_shift` buffer), so images are moved to where the training text lived.
"""
from __future__ import annotations

import logging

import torch

from ..models.checkpoint import load_decoder, save_decoder
from ..core.preprocess import Preprocessor
from ..frames.image_files import IMAGE_SUFFIXES, list_images, read_image

log = logging.getLogger(__name__)


def image_centroid(encoder, frames) -> torch.Tensor:
    pre = Preprocessor(encoder.preprocess_cfg)
    embs = torch.cat([encoder.encode_images(pre(frames[i:i + 32])) for i in range(0, len(frames), 32)])
    return embs.mean(0).cpu()      # a mean of unit vectors, deliberately not renormalised


def apply_mean_shift(encoder, checkpoint_dir, frames, source: str = '') -> float:
    """Set the decoder's input shift from unlabelled `frames`; returns the shift's norm."""
    decoder, vocab, meta = load_decoder(checkpoint_dir)
    centroid = meta.training.get('text_centroid')
    if not centroid:
        raise ValueError(f"{checkpoint_dir} has no text centroid in its training summary; retrain it with novic-train")
    shift = torch.tensor(centroid) - image_centroid(encoder, frames)
    with torch.no_grad():
        decoder.input_shift.copy_(shift)
    training = {
        **meta.training,
        'mean_shift': {'images': len(frames), 'source': source, 'norm': round(float(shift.norm()), 4)},
    }
    save_decoder(checkpoint_dir, decoder, vocab, type(meta)(meta.decoder, meta.clip, meta.tokenizer, training))
    return float(shift.norm())


def apply_mean_shift_from_folder(encoder, checkpoint_dir, folder) -> float:
    paths = list_images(folder, recursive=True)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    frames = [read_image(p) for p in paths]
    return apply_mean_shift(encoder, checkpoint_dir, frames, str(folder))
