"""What both halves of build_classifier share (pipeline.py for bundles, torch_pipeline.py for torch
models), so neither imports the other back: the one decoder fallback of prompted mode and the
label embeddings that persist across runs. Torch-free, ROS-free."""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

from .core.classifier import NOT_LOADED
from .core.errors import DecoderLoadError
from .core.text_cache import DiskTextEmbeddings, TextEmbeddingCache
from .paths import cache_dir

log = logging.getLogger(__name__)
T = TypeVar('T')


def load_decoder_or_not(load: Callable[[bool], T], mode: str, want_decoder: bool, what: str) -> tuple[T, str]:
    """load(with_decoder) and why there is no decoder (core.classifier.NOT_LOADED when none was asked for).
    In prompted mode, which needs none, a decoder that is missing, unreadable or does not fit its CLIP
    model (DecoderLoadError) costs a warning: the models load without it and the reason is kept for
    the refusal of a later switch to generate or hybrid. Any other error, or in another mode, raises."""
    try:
        return load(want_decoder), NOT_LOADED
    except DecoderLoadError as e:
        if mode != 'prompted' or not want_decoder:
            raise
        missing = f"{what} has no usable decoder ({e})"
        log.warning("prompted mode without a decoder: %s", missing)
        return load(False), missing


def text_cache_for(backend, template: str, text_cache_dir: str) -> TextEmbeddingCache | None:
    """Label embeddings that persist across runs, keyed by the CLIP weights and precision (and, inside,
    by template); None when the backend has no text encoder."""
    encoder = backend.text_encoder
    if encoder is None:
        return None
    disk = DiskTextEmbeddings(text_cache_dir or cache_dir() / 'text_embeddings', encoder.cache_key)
    return TextEmbeddingCache(encoder, template, disk=disk)
