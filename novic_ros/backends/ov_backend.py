"""OpenVINO backend: a bundle's graphs (the same ONNX files ONNX Runtime runs) compiled by OpenVINO
for the CPU, or for an Intel GPU or NPU where OpenVINO reports one. Precisions: fp32; bf16 on CPUs
with AMX or AVX512_BF16 (OpenVINO's INFERENCE_PRECISION_HINT: matrix products in bfloat16, kept in
fp32 elsewhere); fp16 on a GPU or NPU; int8 (the bundle's ov_int8 graphs, ov_quantize.py).
Compiled models are cached in <engine_dir>/openvino (OpenVINO's CACHE_DIR), so a restart does not
compile again. The decoder cache lives in numpy arrays that the step graph takes and returns, as on
ONNX Runtime; steps alternate two infer requests whose outputs are read in place (_OvSession).
Needs no torch."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import openvino as ov

from ..core.bundle import DECODER_PREFILL, DECODER_STEP, IMAGE_ENCODER, TEXT_ENCODER, Bundle
from ..core.errors import ModelLoadError
from .base import ENCODER_INPUT, PAST_K, PAST_V, PREFILL_INPUT, STEP_TOKEN_INPUT, TEXT_INPUT
from .devices import cpu_bf16
from .text_graph import GraphTextEncoder

log = logging.getLogger(__name__)
OV_PRECISIONS = ('fp32', 'bf16', 'fp16', 'int8')
# The hint each precision gives OpenVINO's plugins. OpenVINO's CPU plugin defaults to bf16 on AMX
# machines, so fp32 is asked for explicitly; int8 graphs run their unquantised parts at the device's
# fastest float precision.
HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'fp16': 'f16'}


def ov_device(device: str) -> str:
    """A novic_ros device value -> OpenVINO's device name: cpu -> CPU, gpu / gpu.N -> GPU / GPU.N, npu -> NPU."""
    return device.upper()


def available_devices() -> list[str]:
    return list(ov.Core().available_devices)


def check_device(core: ov.Core, device: str) -> str:
    """OpenVINO's name for `device`, or an error listing the devices OpenVINO sees."""
    if device.startswith('cuda'):
        raise ModelLoadError(
            f"device {device!r} is a CUDA GPU, which OpenVINO does not run; use backend onnxruntime or "
            "tensorrt there, or device cpu (or gpu / npu for Intel graphics / NPUs) with openvino"
        )
    name = ov_device(device)
    seen = list(core.available_devices)
    if name not in seen and not (name == 'GPU' and any(d.startswith('GPU.') for d in seen)):
        raise ModelLoadError(f"device {device!r}: OpenVINO {ov.__version__} does not see it (it sees: "
                             f"{', '.join(d.lower() for d in seen) or 'nothing'}); use one of those, or device cpu")
    return name


def check_precision(core: ov.Core, device: str, precision: str) -> None:
    if precision not in OV_PRECISIONS:
        raise ModelLoadError(f"precision {precision!r}: the openvino backend runs {', '.join(OV_PRECISIONS)}")
    if precision == 'bf16':
        if device != 'CPU':
            raise ModelLoadError(f"precision bf16 is for the CPU (AMX, AVX512_BF16); on {device} use fp16 or fp32")
        if not cpu_bf16() or 'BF16' not in core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
            raise ModelLoadError(
                "precision bf16 needs a CPU with bfloat16 matrix instructions (Intel AMX or AVX512_BF16 "
                "in /proc/cpuinfo flags: amx_bf16, avx512_bf16); this CPU has neither: use precision "
                "int8 or fp32"
            )
    if precision == 'fp16' and device == 'CPU':
        raise ModelLoadError(
            "precision fp16 with openvino is for a GPU or NPU; on the CPU use bf16 (AMX), int8 or fp32"
        )


def cache_folder(base: Path | None, device: str, precision: str, threads: int) -> Path | None:
    """The CACHE_DIR for one device, precision and thread count: OpenVINO 2026.4 keys a cached blob
    by the model file and not by INFERENCE_PRECISION_HINT, so a bf16 compile found the fp32 blob and
    ran it with wrong results (toy labels 10% agreement); one folder per setting keeps them apart."""
    if base is None:
        return None
    name = f"{ov.__version__.split('-')[0]}-{device.lower()}-{precision}"
    return base / (name + (f"-t{threads}" if threads else ''))


def compile_config(device: str, precision: str, cache_dir: Path | None, threads: int) -> dict:
    """OpenVINO compile properties; the cache folder is cache_folder()'s for these settings."""
    hint = HINTS.get(precision)
    if precision == 'int8':
        hint = 'bf16' if device == 'CPU' and cpu_bf16() else ('f16' if device != 'CPU' else 'f32')
    config = {'INFERENCE_PRECISION_HINT': hint, 'PERFORMANCE_HINT': 'LATENCY'}
    folder = cache_folder(cache_dir, device, precision, threads)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        config['CACHE_DIR'] = str(folder)
    if threads and device == 'CPU':
        config['INFERENCE_NUM_THREADS'] = threads
    return config


class OvGraph:
    """One compiled graph; an infer request per calling thread (requests are not thread-safe, and the
    node's executor may encode label texts while its worker classifies)."""

    def __init__(self, core: ov.Core, path: Path, device: str, config: dict):
        try:
            # Compiling from the path (not a read model) lets CACHE_DIR key the cached blob by file.
            self.compiled = core.compile_model(str(path), device, config)
        except RuntimeError as e:
            raise ModelLoadError(f"OpenVINO cannot compile {path} for {device}: {e}; export the bundle again") from e
        self._local = threading.local()

    def request(self) -> ov.InferRequest:
        r = getattr(self._local, 'request', None)
        if r is None:
            r = self._local.request = self.compiled.create_infer_request()
        return r

    def request_pair(self) -> tuple[ov.InferRequest, ov.InferRequest]:
        """Two requests of this thread, used in turn by the decoder's steps (_OvSession)."""
        pair = getattr(self._local, 'pair', None)
        if pair is None:
            pair = self._local.pair = (self.compiled.create_infer_request(), self.compiled.create_infer_request())
        return pair

    def run(self, feeds: dict) -> list[np.ndarray]:
        """The graph's outputs, in order, as numpy arrays the caller owns."""
        result = self.request().infer(feeds, share_inputs=True, share_outputs=False)
        return list(result.values())


class _OvSession:
    """Decoder state between steps. Steps alternate between two infer requests whose outputs are not
    copied (share_outputs): one step's keys/values are the next step's inputs in the other request,
    read in place, and stay intact until the step after, when their request runs again. The logits
    returned by a step are valid until the step after next (generation.py reads them at once); the
pair is the thread's, so a thread runs one decode at a time (generation.py does)."""

    def __init__(self, step: OvGraph, k, v):
        self.step_graph, self.k, self.v = step, k, v
        self.requests, self._turn = step.request_pair(), 0

    def step(self, tokens: np.ndarray) -> np.ndarray:
        request = self.requests[self._turn]
        self._turn ^= 1
        result = request.infer({STEP_TOKEN_INPUT: np.ascontiguousarray(tokens, np.int64),
                                PAST_K: np.ascontiguousarray(self.k), PAST_V: np.ascontiguousarray(self.v)},
                               share_inputs=True, share_outputs=True)
        logits, self.k, self.v = result.values()
        return logits

    def reorder(self, index: np.ndarray) -> None:
        self.k, self.v = np.take(self.k, index, axis=1), np.take(self.v, index, axis=1)


class OvDecoderRunner:
    def __init__(self, prefill: OvGraph, step: OvGraph, vocab_size: int, eot: int, max_tokens: int):
        self.prefill, self.step = prefill, step
        self.vocab_size, self.eot, self.max_tokens = vocab_size, eot, max_tokens

    def start(self, embeds: np.ndarray):
        logits, k, v = self.prefill.run({PREFILL_INPUT: np.ascontiguousarray(embeds, np.float32)})
        return logits, _OvSession(self.step, k, v)


class OvTextEncoder(GraphTextEncoder):
    """CLIP's text tower compiled by OpenVINO in fp32 (loaded on first use)."""

    def __init__(self, bundle: Bundle, core: ov.Core, device: str, cache_dir: Path | None, threads: int):
        super().__init__(bundle)
        self.core, self.device, self.config = core, device, compile_config(device, 'fp32', cache_dir, threads)

    def open_graph(self):
        graph = OvGraph(self.core, self.bundle.graph(TEXT_ENCODER), self.device, self.config)
        return lambda tokens: graph.run({TEXT_INPUT: tokens})[0]


class OvBackend:
    name = 'openvino'

    def __init__(self, bundle: Bundle, device: str = 'cpu', threads: int = 0, precision: str = 'fp32',
                 with_decoder: bool = True, cache_dir: str | os.PathLike | None = None):
        self.bundle = bundle
        self.core = ov.Core()
        self.ov_device = check_device(self.core, 'cpu' if device == 'auto' else device)
        self.device = self.ov_device.lower()
        check_precision(self.core, self.ov_device, precision)
        self.precision, self.threads = precision, threads
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        config = compile_config(self.ov_device, precision, self.cache_dir, threads)
        graph_precision = 'ov_int8' if precision == 'int8' else 'fp32'
        self.encoder = OvGraph(self.core, bundle.graph(IMAGE_ENCODER, graph_precision), self.ov_device, config)
        self.runner = None
        if with_decoder:
            d = bundle.require_decoder()
            self.runner = OvDecoderRunner(
                OvGraph(self.core, bundle.graph(DECODER_PREFILL, graph_precision), self.ov_device, config),
                OvGraph(self.core, bundle.graph(DECODER_STEP, graph_precision), self.ov_device, config),
                d.vocab_size,
                d.eot,
                d.max_tokens,
            )
        has_text = bundle.tokenizer is not None and bundle.has_graph(TEXT_ENCODER)
        self.text_encoder = (OvTextEncoder(bundle, self.core, self.ov_device, self.cache_dir, threads)
                             if has_text else None)
        self.version = ov.__version__.split('-')[0]

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self.encoder.run({ENCODER_INPUT: np.ascontiguousarray(pixels, np.float32)})[0]

    def describe(self) -> str:
        prec = self.precision
        if prec == 'bf16':
            prec = f"bf16 on {cpu_bf16()}"
        full = self.core.get_property(self.ov_device, 'FULL_DEVICE_NAME')
        return f"openvino {self.version} ({self.ov_device}: {full}, {prec}), bundle {self.bundle.folder}"
