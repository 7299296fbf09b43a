"""ONNX Runtime backend: a bundle's graphs (core/bundle.py) on the CPU, or on a GPU through the CUDA
execution provider when present; fp32, or int8 on the CPU (quantised graphs, quantize.py). The
decoder cache lives in numpy arrays that the step graph takes and returns, on the CPU through an IO
binding into buffers allocated once per decode (_OrtSession). Needs no torch."""
from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from ..core.bundle import DECODER_PREFILL, DECODER_STEP, IMAGE_ENCODER, TEXT_ENCODER, Bundle
from ..core.errors import ModelLoadError
from .base import (ENCODER_INPUT, LOGITS, PAST_K, PAST_V, PREFILL_INPUT, PRESENT_K, PRESENT_V, STEP_TOKEN_INPUT,
                   TEXT_INPUT)
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
    """Decoder state between steps: the past keys/values as numpy arrays. On the CPU each step runs
    through an IO binding into buffers allocated once per decode (two for the cache, used in turn, each
    sized at first use, or when beam search makes rows of the frames, for the longest label; one for
    the logits), so ONNX Runtime neither allocates
    outputs nor copies them into new arrays; beam reordering writes into the other buffer as well. The
    logits returned by a step are overwritten by the next one (generation.py reads them before)."""

    def __init__(self, step, k, v, vocab_size: int, max_tokens: int):
        self.step_sess, self.k, self.v = step, k, v
        self.binding = None
        if step.get_providers()[0] == 'CPUExecutionProvider':
            self.binding = step.io_binding()
            self._extra = max_tokens            # positions a decode may still add
            self._cache = [(np.empty(0, np.float32), np.empty(0, np.float32)) for _ in range(2)]
            self._turn = 0
            self._logits = np.empty((k.shape[1], vocab_size), np.float32)

    def _next_cache(self, shape) -> tuple[np.ndarray, np.ndarray]:
        """Views of shape `shape` into the cache buffers the current keys/values are not in."""
        self._turn ^= 1
        n = int(np.prod(shape))
        k, v = self._cache[self._turn]
        if n > k.size:              # first use, or more rows (frames -> beams): room for the longest label
            size = n // shape[3] * (shape[3] + self._extra)
            k, v = self._cache[self._turn] = np.empty(size, np.float32), np.empty(size, np.float32)
        return k[:n].reshape(shape), v[:n].reshape(shape)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.ascontiguousarray(tokens, np.int64)
        if self.binding is None:
            feeds = {STEP_TOKEN_INPUT: tokens, PAST_K: self.k, PAST_V: self.v}
            logits, self.k, self.v = self.step_sess.run(None, feeds)
            return logits
        layers, rows, heads, length, dim = self.k.shape
        if self._logits.shape[0] != rows:
            self._logits = np.empty((rows, self._logits.shape[1]), np.float32)
        k, v = self._next_cache((layers, rows, heads, length + 1, dim))
        b = self.binding
        b.bind_cpu_input(STEP_TOKEN_INPUT, tokens)
        b.bind_cpu_input(PAST_K, np.ascontiguousarray(self.k))
        b.bind_cpu_input(PAST_V, np.ascontiguousarray(self.v))
        for name, out in ((LOGITS, self._logits), (PRESENT_K, k), (PRESENT_V, v)):
            b.bind_output(name, 'cpu', 0, np.float32, out.shape, out.ctypes.data)
        self.step_sess.run_with_iobinding(b)
        self.k, self.v = k, v
        return self._logits

    def reorder(self, index: np.ndarray) -> None:
        if self.binding is None:
            self.k, self.v = np.take(self.k, index, axis=1), np.take(self.v, index, axis=1)
            return
        layers, _, heads, length, dim = self.k.shape
        k, v = self._next_cache((layers, len(index), heads, length, dim))
        np.take(self.k, index, axis=1, out=k)
        np.take(self.v, index, axis=1, out=v)
        self.k, self.v = k, v


class OrtDecoderRunner:
    def __init__(self, prefill, step, vocab_size: int, eot: int, max_tokens: int):
        self.prefill, self.step = prefill, step
        self.vocab_size, self.eot, self.max_tokens = vocab_size, eot, max_tokens

    def start(self, embeds: np.ndarray):
        logits, k, v = self.prefill.run(None, {PREFILL_INPUT: np.asarray(embeds, np.float32)})
        return logits, _OrtSession(self.step, k, v, self.vocab_size, self.max_tokens)


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
            log.warning(
                "this CPU has no int8 dot-product instructions (VNNI, ARM dotprod): int8 may gain little over fp32"
            )
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
