"""Interchangeable inference backends behind one interface (base.InferenceBackend):
torch (eager), onnxruntime (exported graphs; CPU or CUDA provider), tensorrt (cached engines),
with the ONNX export and the engine cache they share.

May import: core, paths, atomic_file, torch; onnxruntime and tensorrt only where that backend is
chosen (optional packages). Never params, pipeline, ros, eval, training or cli.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import torch

from ..paths import cache_dir, share_dir
from .base import InferenceBackend
from .onnx_export import ENCODER_FILE, ensure_export, ensure_fp16_encoder, export_info, read_export
from .torch_backend import TorchBackend
from .trt_backend import TrtBackend, require_tensorrt

log = logging.getLogger(__name__)


def resolve_backend_name(name: str, device: torch.device) -> str:
    """'auto': tensorrt on a GPU with the tensorrt package, else onnxruntime, else torch."""
    if name != 'auto':
        return name
    if device.type == 'cuda' and importlib.util.find_spec('tensorrt') is not None:
        return 'tensorrt'
    if importlib.util.find_spec('onnxruntime') is not None:
        return 'onnxruntime'
    return 'torch'


def resolve_engine_dir(engine_dir: str) -> Path:
    """The configured folder, else the package's engines/ when writable, else the user cache."""
    if engine_dir:
        return Path(os.path.expanduser(engine_dir))
    try:
        pkg = share_dir() / 'engines'
        if pkg.is_dir() and os.access(pkg, os.W_OK):
            return pkg
    except FileNotFoundError:
        pass
    return cache_dir() / 'engines'


def create_backend(name: str, encoder, decoder, vocab, *, variant: str = 'custom', decoder_dir=None,
                   engine_dir: str = '', threads: int = 0, max_batch: int = 8, beam_width: int = 1) -> InferenceBackend:
    resolved = resolve_backend_name(name, encoder.device)
    eot = vocab.eot if vocab is not None else 0
    if resolved == 'torch':
        backend = TorchBackend(encoder, decoder, eot)
    elif resolved in ('onnxruntime', 'tensorrt'):
        root = resolve_engine_dir(engine_dir)
        if resolved == 'tensorrt':
            require_tensorrt()        # fail before exporting, with the fallback named
        info = export_info(variant, encoder, decoder, decoder_dir, eot)
        folder = ensure_export(info, encoder, decoder, root)
        if resolved == 'onnxruntime':
            from .ort_backend import OrtBackend    # onnxruntime is optional: imported only when chosen
            backend = OrtBackend(folder, encoder.device, threads, with_decoder=decoder is not None)
        else:
            onnx = ensure_fp16_encoder(folder, encoder) if encoder.precision == 'fp16' else folder / ENCODER_FILE
            backend = TrtBackend(variant, folder, onnx, read_export(folder), root, encoder.device, encoder.precision,
                                 max_batch, beam_width, with_decoder=decoder is not None)
    else:
        raise ValueError(f"unknown backend {name!r}")
    log.info("backend %s%s: %s", resolved, " (auto)" if name == 'auto' else '', backend.describe())
    return backend
