"""TensorRT backend: engines built from a bundle's ONNX graphs on the machine that runs them (once;
cached in engine_dir, engine_cache.py), executed on CUDA buffers from cuda-python (NVIDIA's CUDA
bindings): no torch, so a robot needs tensorrt, cuda-python and the bundle.

Precision: fp16 builds the image encoder from the bundle's fp16 graph (TensorRT 11 only builds
strongly typed networks, so precision lives in the graph, not in a builder flag); the decoder
graphs stay fp32 (small, and its probabilities are what we publish). Arrays come in and go out as
numpy; the decoder's key/value cache goes back to the host between steps, where beam search
reorders it (a few MB per step for ViT-B/32's decoder at 8 frames x 5 beams).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic_file import atomic_write
from ..core.bundle import DECODER_PREFILL, DECODER_STEP, IMAGE_ENCODER, TEXT_ENCODER, Bundle
from .base import ENCODER_INPUT, PAST_K, PAST_V, PREFILL_INPUT, STEP_TOKEN_INPUT
from .devices import cuda_device_count, device_index
from .engine_cache import EngineCache, EngineKey

log = logging.getLogger(__name__)


class TensorRTUnavailable(RuntimeError):
    pass


def require_tensorrt():
    """The tensorrt module on a machine with a GPU, or an error that names the fallback."""
    if not cuda_device_count():
        raise TensorRTUnavailable("backend 'tensorrt' needs an NVIDIA GPU, and CUDA is not available here; "
                                  "use backend 'onnxruntime' (fastest on the CPU) or 'auto'")
    try:
        import tensorrt as trt      # optional: GPU machines only
    except ImportError as e:
        raise TensorRTUnavailable("backend 'tensorrt' needs the tensorrt package (pip install tensorrt); "
                                  "use backend 'onnxruntime' or 'auto' meanwhile") from e
    return trt


def require_cudart():
    """CUDA runtime bindings: cuda-python 12.6+ names them cuda.bindings.runtime, older ones cuda.cudart."""
    try:
        from cuda.bindings import runtime as cudart     # optional: GPU machines only
    except ImportError:
        try:
            from cuda import cudart                      # optional: older cuda-python layout
        except ImportError as e:
            raise TensorRTUnavailable("backend 'tensorrt' needs NVIDIA's CUDA bindings for its buffers "
                                      "(pip install cuda-python); use backend 'onnxruntime' meanwhile") from e
    return cudart


def _check(cudart, result):
    """cuda-python calls return (error, value...): the value, or RuntimeError naming the error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class Profile:
    """min/opt/max shapes per dynamic input of one graph."""
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def build_engine(onnx_path: Path, profile: Profile, timing_cache: Path) -> bytes:
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, 'STRONGLY_TYPED'):
        # Required for the precision to follow the graph on TensorRT 10; the default on 11.
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):       # reads the graph's external data beside it
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 4 << 30)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.shapes.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache.is_file() else b''
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


class _DeviceBuffer:
    """One CUDA allocation that grows to the largest size asked for, freed with its owner."""

    def __init__(self, cudart):
        self.cudart, self.ptr, self.nbytes = cudart, 0, 0

    def at_least(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(_check(self.cudart, self.cudart.cudaMalloc(max(nbytes, 256))))
            self.nbytes = nbytes
        return self.ptr

    def free(self):
        if self.ptr:
            self.cudart.cudaFree(self.ptr)
            self.ptr, self.nbytes = 0, 0

    def __del__(self):
        self.free()


class TrtEngine:
    """One deserialised engine and its execution context; numpy in, numpy out."""

    def __init__(self, data: bytes, stream):
        trt = require_tensorrt()
        self.cudart = require_cudart()
        self.stream = stream
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialise the cached engine (built by another version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.buffers = {n: _DeviceBuffer(self.cudart) for n in names}

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        cudart, stream = self.cudart, self.stream
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        keep = []                      # host arrays must outlive the asynchronous copies
        for name in self.inputs:
            a = np.ascontiguousarray(inputs[name], dtype=self.dtypes[name])
            keep.append(a)
            ptr = self.buffers[name].at_least(a.nbytes)
            _check(cudart, cudart.cudaMemcpyAsync(ptr, a.ctypes.data, a.nbytes, h2d, stream))
            self.context.set_input_shape(name, tuple(a.shape))
            self.context.set_tensor_address(name, ptr)
        outs = []
        for name in self.outputs:
            o = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name])
            self.context.set_tensor_address(name, self.buffers[name].at_least(o.nbytes))
            outs.append(o)
        if not self.context.execute_async_v3(int(stream)):
            raise RuntimeError("TensorRT inference failed")
        for name, o in zip(self.outputs, outs):
            _check(cudart, cudart.cudaMemcpyAsync(o.ctypes.data, self.buffers[name].ptr, o.nbytes, d2h, stream))
        _check(cudart, cudart.cudaStreamSynchronize(stream))
        return outs


class _TrtSession:
    def __init__(self, step: TrtEngine, k, v):
        self.step_engine, self.k, self.v = step, k, v

    def step(self, tokens):
        logits, self.k, self.v = self.step_engine(**{STEP_TOKEN_INPUT: tokens, PAST_K: self.k, PAST_V: self.v})
        return logits

    def reorder(self, index):
        self.k, self.v = np.take(self.k, index, axis=1), np.take(self.v, index, axis=1)


class TrtDecoderRunner:
    def __init__(self, prefill: TrtEngine, step: TrtEngine, bundle: Bundle):
        self.prefill, self.step = prefill, step
        d = bundle.decoder
        self.vocab_size, self.eot, self.max_tokens = d.vocab_size, d.eot, d.max_tokens

    def start(self, embeds):
        logits, k, v = self.prefill(**{PREFILL_INPUT: embeds})
        return logits, _TrtSession(self.step, k, v)


def engine_profiles(bundle: Bundle, max_batch: int, beam_width: int) -> dict[str, Profile]:
    h, w = bundle.clip.preprocess.size
    E = bundle.clip.embed_dim
    opt = min(8, max_batch)
    shapes = {IMAGE_ENCODER: Profile({ENCODER_INPUT: ((1, 3, h, w), (opt, 3, h, w), (max_batch, 3, h, w))})}
    if bundle.decoder is not None:
        d = bundle.decoder
        L, H, D, P, T = d.layers, d.heads, d.head_dim, d.prefix_len, d.max_positions
        rows = max_batch * beam_width
        shapes[DECODER_PREFILL] = Profile({PREFILL_INPUT: ((1, E), (opt, E), (max_batch, E))})
        shapes[DECODER_STEP] = Profile({
            STEP_TOKEN_INPUT: ((1,), (min(rows, opt * beam_width),), (rows,)),
            PAST_K: ((L, 1, H, P, D), (L, min(rows, opt * beam_width), H, P + 2, D), (L, rows, H, T - 1, D)),
            PAST_V: ((L, 1, H, P, D), (L, min(rows, opt * beam_width), H, P + 2, D), (L, rows, H, T - 1, D))})
    return shapes


class TrtBackend:
    name = 'tensorrt'

    def __init__(self, bundle: Bundle, engine_dir: Path, device: str, precision: str, max_batch: int, beam_width: int,
                 with_decoder: bool = True, threads: int = 0):
        trt = require_tensorrt()
        cudart = require_cudart()
        self.bundle, self.device, self.precision, self.threads = bundle, device, precision, threads
        _check(cudart, cudart.cudaSetDevice(device_index(device)))
        props = _check(cudart, cudart.cudaGetDeviceProperties(device_index(device)))
        gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        self.stream = _check(cudart, cudart.cudaStreamCreate())
        cache = EngineCache(engine_dir)
        profiles = engine_profiles(bundle, max_batch, beam_width)
        self.built = []

        def engine(graph: str, prec: str, rows: int) -> TrtEngine:
            onnx = bundle.graph(graph, prec)
            # The graph's content, its external weights included (hashed when the bundle was written).
            content = hashlib.sha256(''.join(bundle.sha256(f) for f in (onnx.name, onnx.name + '.data')
                                             if f in bundle.files).encode()).hexdigest()[:16]
            key = EngineKey(bundle.variant, graph, content, gpu, trt.__version__, prec, 1, rows)
            data, built = cache.get_or_build(key, lambda: build_engine(onnx, profiles[graph],
                                                                       cache.timing_cache_path(gpu, trt.__version__)))
            if built:
                self.built.append(key.stem)
            return TrtEngine(data, self.stream)

        self.encoder = engine(IMAGE_ENCODER, precision, max_batch)
        self.runner = None
        if with_decoder:
            self.runner = TrtDecoderRunner(engine(DECODER_PREFILL, 'fp32', max_batch),
                                           engine(DECODER_STEP, 'fp32', max_batch * beam_width), bundle)
        self.text_encoder = None
        if bundle.tokenizer is not None and bundle.has_graph(TEXT_ENCODER):
            # Prompts are embedded once per label: by ONNX Runtime from the bundle's text graph, on the CPU.
            from .ort_backend import OrtTextEncoder     # onnxruntime: the runtime's own requirement
            self.text_encoder = OrtTextEncoder(bundle, threads)
        self.version = trt.__version__
        self.gpu = gpu

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        (embeds,) = self.encoder(**{ENCODER_INPUT: pixels})
        return embeds.astype(np.float32, copy=False)

    def describe(self) -> str:
        return (f"tensorrt {self.version} on {self.gpu} (encoder {self.precision}, decoder fp32), "
                f"bundle {self.bundle.folder}")
