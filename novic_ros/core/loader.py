"""Build a ready classifier from validated parameters: variant -> encoder + decoder -> backend."""
from __future__ import annotations

import logging

import torch

from ..params import ModelParams
from .checkpoint import check_pairing, clip_fingerprint, load_decoder
from .classifier import NovicClassifier
from .clip_encoder import ClipEncoder, resolve_device
from .variants import get_variant

log = logging.getLogger(__name__)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': fp16 on a GPU, fp32 on the CPU (ClipEncoder refuses fp16 without a GPU)."""
    if precision == 'auto':
        return 'fp16' if device.type == 'cuda' else 'fp32'
    return precision


def build_classifier(params: ModelParams, strict: bool = True) -> NovicClassifier:
    """Load the variant named by params.model. Raises ModelLoadError (or CheckpointMismatchError)
    with a message that says what was looked for where."""
    from ..backends import create_backend
    if params.threads:
        torch.set_num_threads(params.threads)
    variant = get_variant(params.model, params.models_file or None)
    device = resolve_device(params.device)
    encoder = ClipEncoder(variant.clip, device, resolve_precision(params.precision, device))
    decoder = vocab = None
    if params.mode != 'prompted':      # prompted mode needs no decoder
        decoder, vocab, meta = load_decoder(variant.decoder)
        check_pairing(meta, encoder.embed_dim, clip_fingerprint(encoder.model), variant.clip.describe(),
                      str(variant.decoder), strict=strict)
    backend = create_backend(params.backend, encoder, decoder, vocab, variant=variant.name, decoder_dir=variant.decoder,
                             engine_dir=params.engine_dir, threads=params.threads, max_batch=params.batch_size,
                             beam_width=params.beam_width)
    return NovicClassifier(backend, vocab, params, encoder, variant.name)
