"""ONNX Runtime backend: a bundle's graphs (core/bundle.py) on the CPU, or on a GPU through the CUDA
execution provider when present; fp32, or int8 on the CPU (quantised graphs, quantize.py). The
decoder cache lives in numpy arrays that the step graph takes and returns. Needs no torch."""
from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from ..core.bundle import DECODER_PREFILL, DECODER_STEP, IMAGE_ENCODER, TEXT_ENCODER, Bundle
from ..core.errors import ModelLoadError
from .base import ENCODER_INPUT, PAST_K, PAST_V, PREFILL_INPUT, STEP_TOKEN_INPUT, TEXT_INPUT
from .devices import cpu_int8_dot
from .text_graph import GraphTextEncoder

log = logging.getLogger(__name__)


def session_options(threads: int):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's idle worker threads spin by default; between graph runs we run numpy (preprocessing, beam
    # bookkeeping), and spinning threads would steal its cores.
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def providers(device: str) -> list[str]:
    if device.startswith('cuda') and 'CUDAExecutionProvider' in ort.get_available_providers():
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


def load_session(path, threads: int = 0, device: str = 'cpu') -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=providers(device))
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise ModelLoadError(f"ONNX Runtime cannot load {path}: {e}; export the bundle again") from e


class _OrtSession:
    """Decoder state between steps: the past keys/values as numpy arrays."""

    def __init__(self, step, k, v):
        self.step_sess, self.k, self.v = step, k, v

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits, self.k, self.v = self.step_sess.run(None, {STEP_TOKEN_INPUT: np.asarray(tokens, np.int64),
                                                          PAST_K: self.k, PAST_V: self.v})
        return logits

    def reorder(self, index: np.ndarray) -> None:
        self.k, self.v = np.take(self.k, index, axis=1), np.take(self.v, index, axis=1)


class OrtDecoderRunner:
    def __init__(self, prefill, step, vocab_size: int, eot: int, max_tokens: int):
        self.prefill, self.step = prefill, step
        self.vocab_size, self.eot, self.max_tokens = vocab_size, eot, max_tokens

    def start(self, embeds: np.ndarray):
        logits, k, v = self.prefill.run(None, {PREFILL_INPUT: np.asarray(embeds, np.float32)})
        return logits, _OrtSession(self.step, k, v)


class OrtTextEncoder(GraphTextEncoder):
    """CLIP's text tower as the bundle's graph on ONNX Runtime (loaded on first use)."""

    def __init__(self, bundle: Bundle, threads: int = 0, device: str = 'cpu'):
        super().__init__(bundle)
        self.threads, self.device = threads, device

    def open_graph(self):
        session = load_session(self.bundle.graph(TEXT_ENCODER), self.threads, self.device)
        return lambda tokens: session.run(None, {TEXT_INPUT: tokens})[0]


class OrtBackend:
    name = 'onnxruntime'

    def __init__(self, bundle: Bundle, device: str = 'cpu', threads: int = 0, precision: str = 'fp32',
                 with_decoder: bool = True):
        if precision == 'int8' and device.startswith('cuda'):
            raise ModelLoadError("precision int8 runs on the CPU (ONNX Runtime's integer kernels); "
                                 "use device 'cpu', or precision fp32/fp16 on the GPU")
        self.bundle = bundle
        self.device = device if device.startswith('cuda') else 'cpu'
        self.threads = threads
        self.precision = 'int8' if precision == 'int8' else 'fp32'
        if precision == 'fp16':
            log.warning("onnxruntime runs fp32 graphs (fp16 is the tensorrt backend's); running fp32")
        self.int8_dot = cpu_int8_dot() if self.precision == 'int8' else ''
        if self.precision == 'int8' and not self.int8_dot:
            log.warning("this CPU has no int8 dot-product instructions (VNNI, ARM dotprod): int8 may gain little over fp32")
        self.providers = providers(device)
        self.encoder = load_session(bundle.graph(IMAGE_ENCODER, self.precision), threads, device)
        self.runner = None
        if with_decoder:
            d = bundle.require_decoder()
            self.runner = OrtDecoderRunner(load_session(bundle.graph(DECODER_PREFILL, self.precision), threads, device),
                                           load_session(bundle.graph(DECODER_STEP, self.precision), threads, device),
                                           d.vocab_size, d.eot, d.max_tokens)
        has_text = bundle.tokenizer is not None and bundle.has_graph(TEXT_ENCODER)
        self.text_encoder = OrtTextEncoder(bundle, threads, self.device) if has_text else None
        self.version = ort.__version__

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        (embeds,) = self.encoder.run(None, {ENCODER_INPUT: np.asarray(pixels, np.float32)})
        return embeds

    def describe(self) -> str:
        eps = ', '.join(p.replace('ExecutionProvider', '') for p in self.providers)
        prec = f"int8 on {self.int8_dot or 'plain SIMD'}" if self.precision == 'int8' else self.precision
        return f"onnxruntime {self.version} ({eps}, {prec}), bundle {self.bundle.folder}"
