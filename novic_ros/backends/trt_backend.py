"""TensorRT backend: engines built from the ONNX export with the tensorrt Python API, cached in
engines/ (engine_cache.py), run on torch CUDA tensors.

Precision: fp16 builds the image encoder from an fp16 ONNX export (TensorRT 11 only builds
strongly typed networks, so precision lives in the graph, not in a builder flag); the decoder
graphs stay fp32 (small, and its probabilities are what we publish).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .base import ENCODER_INPUT, PAST_K, PAST_V, PREFILL_INPUT, STEP_TOKEN_INPUT
from ..atomic_file import atomic_write
from .engine_cache import EngineCache, EngineKey, file_hash
from .onnx_export import PREFILL_FILE, STEP_FILE

log = logging.getLogger(__name__)


class TensorRTUnavailable(RuntimeError):
    pass


def require_tensorrt():
    """The tensorrt module and a CUDA device, or an error that names the fallback."""
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("backend 'tensorrt' needs an NVIDIA GPU, and CUDA is not available here; "
                                  "use backend 'onnxruntime' (fastest on the CPU) or 'auto'")
    try:
        import tensorrt as trt      # optional: GPU machines only
    except ImportError as e:
        raise TensorRTUnavailable("backend 'tensorrt' needs the tensorrt package (pip install tensorrt); "
                                  "use backend 'onnxruntime' or 'auto' meanwhile") from e
    return trt


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
    if not parser.parse_from_file(str(onnx_path)):
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


class TrtEngine:
    """One deserialised engine and its execution context; inputs and outputs are CUDA tensors."""

    def __init__(self, data: bytes, device: torch.device):
        trt = require_tensorrt()
        self.trt = trt
        self.device = device
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialise the cached engine (built by another version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def _torch_dtype(self, name: str) -> torch.dtype:
        dt = self.engine.get_tensor_dtype(name)
        return {self.trt.float32: torch.float32, self.trt.float16: torch.float16,
                self.trt.int64: torch.int64, self.trt.int32: torch.int32}[dt]

    def __call__(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        keep = []
        for name in self.inputs:
            t = inputs[name].to(self.device, self._torch_dtype(name)).contiguous()
            keep.append(t)
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outs = []
        for name in self.outputs:
            o = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._torch_dtype(name), device=self.device)
            self.context.set_tensor_address(name, o.data_ptr())
            outs.append(o)
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT inference failed")
        return outs


class _TrtSession:
    def __init__(self, step: TrtEngine, k, v):
        self.step_engine, self.k, self.v = step, k, v

    def step(self, tokens):
        logits, self.k, self.v = self.step_engine(**{STEP_TOKEN_INPUT: tokens, PAST_K: self.k, PAST_V: self.v})
        return logits

    def reorder(self, index):
        index = index.to(self.k.device)
        self.k, self.v = self.k.index_select(1, index), self.v.index_select(1, index)


class TrtDecoderRunner:
    def __init__(self, prefill: TrtEngine, step: TrtEngine, meta: dict):
        self.prefill, self.step = prefill, step
        self.vocab_size, self.eot = meta['vocab_size'], meta['eot']
        self.max_tokens = meta['max_positions'] - meta['prefix_len']

    def start(self, embeds):
        logits, k, v = self.prefill(**{PREFILL_INPUT: embeds})
        return logits, _TrtSession(self.step, k, v)


def engine_profiles(meta: dict, max_batch: int, beam_width: int) -> dict[str, Profile]:
    h, w = meta['image_size']
    L, H, D, P, T = (meta['decoder_layers'], meta['decoder_heads'], meta['head_dim'], meta['prefix_len'],
                     meta['max_positions'])
    opt = min(8, max_batch)
    rows = max_batch * beam_width
    return {
        'image_encoder': Profile({ENCODER_INPUT: ((1, 3, h, w), (opt, 3, h, w), (max_batch, 3, h, w))}),
        'decoder_prefill': Profile({PREFILL_INPUT: ((1, meta['embed_dim']), (opt, meta['embed_dim']),
                                                    (max_batch, meta['embed_dim']))}),
        'decoder_step': Profile({STEP_TOKEN_INPUT: ((1,), (min(rows, opt * beam_width),), (rows,)),
                                 PAST_K: ((L, 1, H, P, D), (L, min(rows, opt * beam_width), H, P + 2, D), (L, rows, H, T - 1, D)),
                                 PAST_V: ((L, 1, H, P, D), (L, min(rows, opt * beam_width), H, P + 2, D), (L, rows, H, T - 1, D))}),
    }


class TrtBackend:
    name = 'tensorrt'

    def __init__(self, variant: str, export_dir: Path, encoder_onnx: Path, meta: dict, engine_dir: Path,
                 device: torch.device, precision: str, max_batch: int, beam_width: int, with_decoder: bool = True):
        trt = require_tensorrt()
        self.device = device
        self.precision = precision
        self.input_dtype = torch.float16 if precision == 'fp16' else torch.float32
        gpu = torch.cuda.get_device_name(device)
        cache = EngineCache(engine_dir)
        profiles = engine_profiles(meta, max_batch, beam_width)
        self.built = []

        def engine(graph: str, onnx: Path, prec: str, rows: int) -> TrtEngine:
            key = EngineKey(variant, graph, file_hash(onnx)[:16], gpu, trt.__version__, prec, 1, rows)
            data, built = cache.get_or_build(key, lambda: build_engine(onnx, profiles[graph],
                                                                       cache.timing_cache_path(gpu, trt.__version__)))
            if built:
                self.built.append(key.stem)
            return TrtEngine(data, device)

        self.encoder = engine('image_encoder', encoder_onnx, precision, max_batch)
        self.runner = None
        if with_decoder:
            self.runner = TrtDecoderRunner(engine('decoder_prefill', export_dir / PREFILL_FILE, 'fp32', max_batch),
                                           engine('decoder_step', export_dir / STEP_FILE, 'fp32', max_batch * beam_width),
                                           meta)
        self.version = trt.__version__
        self.gpu = gpu

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        (embeds,) = self.encoder(**{ENCODER_INPUT: pixels})
        return embeds.float()

    def describe(self) -> str:
        return f"tensorrt {self.version} on {self.gpu} (encoder {self.precision}, decoder fp32)"
