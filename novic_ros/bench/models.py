"""Benchmark models: the real architectures with random weights (speed does not depend on the
weights, and no pretrained weights can be downloaded here), built once and cached."""
from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from ..models.checkpoint import ClipInfo, DecoderMeta, clip_fingerprint, save_decoder
from ..models.clip_encoder import ClipEncoder
from ..core.variants import ClipSpec
from ..models.decoder import DecoderConfig, ObjectDecoder
from ..core.label_tokens import LabelVocab
from ..lexicon.nouns import build_dictionary
from ..lexicon.wordnet import WordNet
from ..paths import cache_dir, config_path
from ..training.train_config import TrainConfig

log = logging.getLogger(__name__)
TYPICAL_STEPS = 4     # a typical label: the dictionary's mean is 2.4 BPE tokens, plus end-of-text


def bench_dir() -> Path:
    return cache_dir() / 'bench'


@lru_cache(maxsize=1)
def dictionary_vocab() -> LabelVocab:
    """The compact vocabulary of the full WordNet dictionary (what a real b32 decoder emits)."""
    return LabelVocab.from_labels([e.label for e in build_dictionary(WordNet.load())])


def b32_decoder_config(embed_dim: int = 512) -> DecoderConfig:
    """The decoder config/train/gpu.yaml trains for ViT-B/32, over the dictionary's vocabulary."""
    return TrainConfig.from_yaml(config_path('train', 'gpu.yaml')).decoder.config(embed_dim, len(dictionary_vocab()))


def b32_clip_dir() -> Path:
    """A local-dir open_clip folder with ViT-B-32 and random (seeded) weights, for the node benchmark."""
    folder = bench_dir() / 'vit-b-32-random'
    if not (folder / 'open_clip_model.safetensors').is_file():
        folder.mkdir(parents=True, exist_ok=True)
        cfg = open_clip.get_model_config('ViT-B-32')
        (folder / 'open_clip_config.json').write_text(json.dumps({'model_cfg': cfg, 'preprocess_cfg': {}}))
        torch.manual_seed(0)
        model = open_clip.create_model('ViT-B-32', load_weights=False)
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / 'open_clip_model.safetensors')
        )
    return folder


# ViT-B/32's embedding width with a one-layer text tower: training benchmarks whose embeddings are as
# large as a real run's, computed in seconds.
WIDE_TINY_CFG = {
    'embed_dim': 512,
    'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 64, 'head_width': 32, 'patch_size': 16},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 64, 'heads': 2, 'layers': 1},
}


def wide_tiny_clip_dir() -> Path:
    folder = bench_dir() / 'wide-tiny-clip-random'
    if not (folder / 'open_clip_model.safetensors').is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / 'open_clip_config.json').write_text(json.dumps({'model_cfg': WIDE_TINY_CFG, 'preprocess_cfg': {}}))
        torch.manual_seed(0)
        model = open_clip.model.CLIP(**WIDE_TINY_CFG)
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / 'open_clip_model.safetensors')
        )
    return folder


def b32_encoder() -> ClipEncoder:
    return ClipEncoder(ClipSpec.local_dir(b32_clip_dir()), 'cpu')


def b32_decoder_dir(encoder: ClipEncoder) -> Path:
    cfg = b32_decoder_config(encoder.embed_dim)
    tag = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    folder = bench_dir() / f'b32-decoder-random-{tag}'       # a new config gets a new decoder
    if not (folder / 'config.json').is_file():
        torch.manual_seed(0)
        decoder = ObjectDecoder(cfg)
        meta = DecoderMeta(cfg, ClipInfo(encoder.spec.model, None, encoder.embed_dim, clip_fingerprint(encoder.model)),
                           training={'note': 'random weights, for benchmarks only'})
        save_decoder(folder, decoder, dictionary_vocab(), meta)
    return folder


def b32_models_file() -> Path:
    """models.yaml with the variant `b32-random` for the node benchmark."""
    enc = b32_encoder()
    path = bench_dir() / 'models.yaml'
    path.write_text(f"b32-random:\n  clip_model: local-dir:{b32_clip_dir()}\n  decoder: {b32_decoder_dir(enc)}\n")
    return path
