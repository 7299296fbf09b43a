"""Interchangeable inference backends behind one interface (base.InferenceBackend)."""
from __future__ import annotations

import logging

from .base import InferenceBackend

log = logging.getLogger(__name__)


def resolve_backend_name(name: str, device) -> str:
    """'auto': tensorrt on a GPU with the tensorrt package, else onnxruntime, else torch."""
    if name != 'auto':
        return name
    return 'torch'


def create_backend(name: str, encoder, decoder, vocab, *, threads: int = 0) -> InferenceBackend:
    resolved = resolve_backend_name(name, encoder.device)
    if resolved == 'torch':
        from .torch_backend import TorchBackend
        backend = TorchBackend(encoder, decoder, vocab.eot if vocab else 0)
    else:
        raise ValueError(f"unknown backend {name!r}")
    log.info("backend %s%s: %s", resolved, " (auto)" if name == 'auto' else '', backend.describe())
    return backend
