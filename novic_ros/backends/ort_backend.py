"""ONNX Runtime backend: the exported encoder and decoder graphs (onnx_export.py) on the CPU, or
on a GPU through the CUDA execution provider when present. The decoder cache lives in numpy
arrays that the step graph takes and returns."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from .base import ENCODER_INPUT, PAST_K, PAST_V, PREFILL_INPUT, STEP_TOKEN_INPUT
from .onnx_export import ENCODER_FILE, PREFILL_FILE, STEP_FILE, read_export

log = logging.getLogger(__name__)


def session_options(threads: int):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's idle worker threads spin by default; between graph runs we run torch (preprocessing, beam
    # bookkeeping), and spinning threads would steal its cores.
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def providers(device: torch.device) -> list[str]:
    available = ort.get_available_providers()
    if device.type == 'cuda' and 'CUDAExecutionProvider' in available:
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


class _OrtSession:
    """Decoder state between steps: the past keys/values as numpy arrays."""

    def __init__(self, step, k, v):
        self.step_sess, self.k, self.v = step, k, v

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, self.k, self.v = self.step_sess.run(None, {STEP_TOKEN_INPUT: tokens.cpu().numpy().astype(np.int64),
                                                          PAST_K: self.k, PAST_V: self.v})
        return torch.from_numpy(logits)

    def reorder(self, index: torch.Tensor) -> None:
        idx = index.cpu().numpy()
        self.k, self.v = np.take(self.k, idx, axis=1), np.take(self.v, idx, axis=1)


class OrtDecoderRunner:
    def __init__(self, prefill, step, vocab_size: int, eot: int, max_tokens: int):
        self.prefill, self.step = prefill, step
        self.vocab_size, self.eot, self.max_tokens = vocab_size, eot, max_tokens

    def start(self, embeds: torch.Tensor):
        logits, k, v = self.prefill.run(None, {PREFILL_INPUT: embeds.float().cpu().numpy()})
        return torch.from_numpy(logits), _OrtSession(self.step, k, v)


class OrtBackend:
    name = 'onnxruntime'

    def __init__(self, export_dir: Path, device: torch.device, threads: int = 0, with_decoder: bool = True):
        meta = read_export(export_dir)
        if meta is None:
            raise FileNotFoundError(f"no complete ONNX export in {export_dir}; run novic-export")
        self.meta = meta
        self.export_dir = Path(export_dir)
        self.device = device if device.type == 'cuda' else torch.device('cpu')
        self.input_dtype = torch.float32
        self.providers = providers(device)
        opts = session_options(threads)
        load = lambda f: ort.InferenceSession(str(self.export_dir / f), opts, providers=self.providers)  # noqa: E731
        self.encoder = load(ENCODER_FILE)
        self.runner = None
        if with_decoder:
            self.runner = OrtDecoderRunner(load(PREFILL_FILE), load(STEP_FILE), meta['vocab_size'], meta['eot'],
                                           meta['max_positions'] - meta['prefix_len'])
        self.version = ort.__version__

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        (embeds,) = self.encoder.run(None, {ENCODER_INPUT: pixels.float().cpu().numpy()})
        return torch.from_numpy(embeds)

    def describe(self) -> str:
        return f"onnxruntime {self.version} ({', '.join(p.replace('ExecutionProvider', '') for p in self.providers)})"
