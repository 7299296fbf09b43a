"""Interchangeable inference backends behind one interface (base.InferenceBackend):
torch (eager), onnxruntime (a bundle's graphs; CPU or CUDA provider; int8 on the CPU), openvino (the same
graphs; fp32, bf16 on AMX, NNCF int8; Intel GPU / NPU), tensorrt
(engines built from a bundle's graphs, cached), with the ONNX export, int8 quantisation and the
engine cache they share.

May import: core, models (torch_backend and onnx_export), paths, atomic_file, numpy. torch only in torch_backend
and onnx_export (the
torch side: eager models and their export); onnxruntime, onnx, openvino, nncf, tensorrt and cuda only where
that backend or tool is chosen (optional packages). This package's own import needs none of
them. Never params, pipeline, ros, eval, training or cli.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..paths import cache_dir, share_dir
from .devices import cuda_device_count


def resolve_backend_name(name: str, device: str) -> str:
    """'auto': tensorrt on a GPU with the tensorrt package, else onnxruntime, else torch."""
    if name != 'auto':
        return name
    if device != 'cpu' and cuda_device_count() and importlib.util.find_spec('tensorrt') is not None:
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
