"""The composition root: parameters -> model variant -> backend -> classifier, and the one loop
that feeds it (decode, reject, batch, zip back).

It sits above novic_ros.core (ROS-free inference) and novic_ros.backends, which know nothing of
each other's construction; the node, the CLIs, evaluation and the benchmarks build classifiers
here and nowhere else. The runtime backends (onnxruntime, openvino, tensorrt) run a bundle; this module
imports no torch, so a runtime install without it runs a bundle end to end. A variant given as
an open_clip model and a decoder checkpoint is loaded (torch backend) or exported to a bundle
first (runtime backends) by novic_ros.torch_pipeline, where torch is installed.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import numpy as np

from .backends import resolve_backend_name, resolve_engine_dir
from .backends.devices import resolve_device
from .core.bundle import DECODER_PREFILL, DECODER_STEP, IMAGE_ENCODER, read_bundle
from .core.classifier import NOT_LOADED, NovicClassifier
from .core.object_finder import ObjectFinder
from .core.export_record import cached_bundle, remember_export
from .core.errors import FrameError, ModelLoadError
from .core.frame_labels import FrameLabels
from .core.variants import ModelVariant, get_variant
from .model_loading import load_decoder_or_not, text_cache_for
from .params import ModelParams

log = logging.getLogger(__name__)
T = TypeVar('T')
# What loading and exporting torch models needs and a runtime install lacks.
INT8_GRAPHS = (IMAGE_ENCODER, DECODER_PREFILL, DECODER_STEP)
OPENVINO_DEVICES = ('gpu', 'npu')
AUTO_CPU_RUNTIMES = ('onnxruntime', 'openvino')    # timed against each other by backend auto on a CPU
TORCH_SIDE = ('torch', 'torchvision', 'open_clip', 'timm', 'safetensors', 'onnx', 'onnxscript')


def build_classifier(
    params: ModelParams, strict: bool = True, *, decoder_for_all_modes: bool = False
) -> NovicClassifier:
    """Load the variant named by params.model (a models-file entry or a bundle folder) and wrap it in
    the chosen backend. Raises ModelLoadError (DecoderLoadError for the decoder) saying what was looked for
    where; with strict=False a decoder trained for other CLIP weights only warns.

    Prompted mode needs no decoder and loads none, unless `decoder_for_all_modes` (the node: a live
    switch to generate or hybrid then needs no restart). The decoder is then loaded when the variant
    has one; one that is missing or does not load leaves a classifier that refuses those modes,
    saying why."""
    variant = get_variant(params.model, params.models_file or None)
    backend_name = resolve_backend_name(params.backend, params.device)
    if params.backend == 'auto' and params.precision == 'bf16':
        backend_name = 'openvino'                      # the one runtime here that runs bf16
    if params.device.startswith(OPENVINO_DEVICES) and backend_name != 'openvino':
        raise ModelLoadError(f"device {params.device!r} is an OpenVINO device (Intel graphics, NPU); use backend "
                             f"openvino with it, or device cpu / cuda with backend {backend_name}")
    if backend_name == 'torch':
        if params.precision == 'bf16':
            raise ModelLoadError("precision bf16 is the openvino backend's (CPUs with AMX or AVX512_BF16); torch runs "
                                 "fp32, or fp16 on a GPU")
        if variant.bundle is not None:
            raise ModelLoadError(f"model {params.model} is a bundle of exported graphs; the torch backend runs the "
                                 "variant's CLIP model and decoder checkpoint: use backend onnxruntime or tensorrt")
        return _torch_models(variant).torch_classifier(variant, params, strict, decoder_for_all_modes)
    if backend_name not in ('onnxruntime', 'tensorrt', 'openvino'):
        raise ValueError(f"unknown backend {params.backend!r}")
    want_decoder = params.mode != 'prompted' or decoder_for_all_modes
    # OpenVINO picks among its own devices (auto: the CPU); the others ask the NVIDIA driver.
    device = (
        ('cpu' if params.device == 'auto' else params.device)
        if backend_name == 'openvino'
        else resolve_device(params.device)
    )
    engine_dir = resolve_engine_dir(params.engine_dir)
    precision = runtime_precision(backend_name, params.precision, device)
    missing_decoder = NOT_LOADED
    fp16 = backend_name == 'tensorrt' and precision == 'fp16'
    bundle = None
    if variant.bundle is not None:
        bundle = read_bundle(variant.bundle)
        if bundle.decoder is None and want_decoder:
            if params.mode != 'prompted':
                bundle.require_decoder()
            missing_decoder = f"bundle {bundle.folder} has no decoder (exported for prompted mode only)"
    else:
        # The variant's files unchanged since their export: run that bundle, torch never imported.
        bundle = cached_bundle(variant, engine_dir, want_decoder, fp16, strict)
    if bundle is None:
        torch_models = _torch_models(variant)
        bundle, missing_decoder = load_decoder_or_not(
            lambda with_decoder: torch_models.export_for(variant, engine_dir, with_decoder, fp16=fp16, strict=strict),
            params.mode, want_decoder, f"variant {variant.name!r}")
        if missing_decoder == NOT_LOADED:       # the export asked for: the next start runs it torch-free
            remember_export(variant, engine_dir, bundle, strict)
    with_decoder = want_decoder and bundle.decoder is not None
    selection = None
    if _calibrate_auto(params, backend_name, device, precision):
        from .backends import auto_select
        factories = {name: (lambda name=name: _runtime_backend(name, bundle, device, precision, params, engine_dir,
                                                                with_decoder)) for name in AUTO_CPU_RUNTIMES}
        versions = {name: importlib.metadata.version(name) for name in AUTO_CPU_RUNTIMES}
        backend, selection = auto_select.select(factories, versions, bundle, precision, params.threads,
                                                params.beam_width, engine_dir)
        backend.selection = selection.describe()        # /diagnostics: backend_selection
        backend_name = selection.backend
    else:
        backend = _runtime_backend(backend_name, bundle, device, precision, params, engine_dir, with_decoder)
    log.info("backend %s%s: %s", backend_name, f" ({selection.describe()})" if selection else
             " (auto)" if params.backend == 'auto' else '', backend.describe())
    vocab = bundle.label_vocab() if with_decoder else None
    options = params.to_options()
    return NovicClassifier(backend, vocab, options, bundle.clip, bundle.variant, missing_decoder=missing_decoder,
                           text_cache=text_cache_for(backend, options.prompt_template, params.text_cache_dir),
                           source=variant.describe_loaded(vocab is not None),
                           novic=bundle.novic_decoding() if with_decoder else None)


def build_object_finder(classifier: NovicClassifier, params: ModelParams) -> ObjectFinder:
    """The multi-object mode over a classifier's models and mode (ObjectFinder): thresholds left at -1
    come calibrated for its CLIP weights; TensorRT engines take at most batch_size windows a call."""
    max_batch = params.batch_size if classifier.backend.name == 'tensorrt' else None
    finder = ObjectFinder(classifier, params.to_object_options(classifier.clip.fingerprint), max_batch)
    log.info("%s", finder.describe())
    return finder


def _calibrate_auto(params: ModelParams, backend_name: str, device: str, precision: str) -> bool:
    """backend auto on the CPU with OpenVINO installed beside ONNX Runtime: measure, not a fixed order
    (precision stays the user's: fp32 or int8 on both runtimes)."""
    return (params.backend == 'auto' and backend_name == 'onnxruntime' and device == 'cpu'
            and precision in ('fp32', 'int8') and importlib.util.find_spec('openvino') is not None)


def _runtime_backend(
    name: str, bundle, device: str, precision: str, params: ModelParams, engine_dir, with_decoder: bool
):
    """The bundle on one runtime backend (int8 graphs made first where the bundle lacks them)."""
    if name == 'onnxruntime':
        if precision == 'int8' and not all(bundle.has_graph(g, 'int8') for g in INT8_GRAPHS if bundle.has_graph(g)):
            # Quantising needs the onnx package (an export-side tool): only when the bundle lacks int8 graphs.
            from .backends.quantize import ensure_int8
            bundle = ensure_int8(bundle)
        from .backends.ort_backend import OrtBackend     # onnxruntime is optional: imported only when chosen
        return OrtBackend(bundle, device, params.threads, precision, with_decoder=with_decoder)
    if name == 'openvino':
        if precision == 'int8' and not all(bundle.has_graph(g, 'ov_int8') for g in INT8_GRAPHS if bundle.has_graph(g)):
            from .backends.ov_quantize import ensure_ov_int8   # nncf: an export-side tool, only when graphs are missing
            from .int8_calibration import calibration_frames   # images to calibrate on: only when quantising
            bundle = ensure_ov_int8(bundle, calibration_frames)
        return _openvino().OvBackend(bundle, device, params.threads, precision, with_decoder=with_decoder,
                                     cache_dir=engine_dir / 'openvino')
    from .backends.trt_backend import TrtBackend     # tensorrt is optional: imported only when chosen
    return TrtBackend(bundle, engine_dir, device, precision, params.batch_size, params.beam_width,
                      with_decoder=with_decoder, threads=params.threads)


def runtime_precision(backend: str, precision: str, device: str) -> str:
    """onnxruntime: fp32, or int8 on the CPU; tensorrt: fp16 or fp32 (auto: fp16); openvino: fp32, bf16,
    int8 on the CPU, fp16 on its GPU / NPU (auto: fp32 on the CPU, fp16 elsewhere)."""
    if backend == 'tensorrt':
        if precision in ('int8', 'bf16'):
            raise ModelLoadError(
                f"precision {precision} runs on the CPU (int8: onnxruntime or openvino; bf16: openvino); "
                "tensorrt runs fp16 or fp32"
            )
        return 'fp16' if precision == 'auto' else precision
    if backend == 'openvino':
        return ('fp32' if device == 'cpu' else 'fp16') if precision == 'auto' else precision
    if precision == 'bf16':
        raise ModelLoadError(f"precision bf16 is the openvino backend's (CPUs with AMX or AVX512_BF16); {backend} "
                             "runs fp32 or int8 on the CPU")
    return 'fp32' if precision == 'auto' else precision


def _openvino():
    """novic_ros.backends.ov_backend, or an error naming the optional extra that brings OpenVINO."""
    try:
        from .backends import ov_backend   # openvino is optional (novic_ros[openvino]): imported only when chosen
    except ImportError as e:
        if (e.name or '').split('.')[0] != 'openvino':
            raise
        raise ModelLoadError("backend openvino needs the openvino package: `pip install novic_ros[openvino]` "
                             "(or `pip install -r requirements-openvino.txt`); or use backend onnxruntime") from None
    return ov_backend


def _torch_models(variant: ModelVariant):
    """novic_ros.torch_pipeline, or an error saying that this variant needs torch and how to do without."""
    try:
        # torch is optional: a runtime install runs bundles and never loads it.
        from . import torch_pipeline as torch_models
    except ImportError as e:
        if (e.name or '').split('.')[0] not in TORCH_SIDE:
            raise
        raise ModelLoadError(
            f"model {variant.name} is defined by a CLIP model and a decoder checkpoint, and loading or exporting "
            f"them needs torch and open_clip ({e}). Where torch is installed, export a bundle with "
            f"`novic-export --model {variant.name} --out FOLDER`, copy FOLDER here and set model to its path") from None
    return torch_models


@dataclass(frozen=True)
class Classified(Generic[T]):
    """One input and what became of it: labels, or the error that rejected it."""
    item: T
    frame: np.ndarray | None = None        # the decoded RGB frame (None when rejected)
    labels: FrameLabels | None = None      # FrameObjects when the "classifier" was an ObjectFinder
    error: FrameError | None = None


def classify_in_batches(classifier, items: Iterable[T], to_frame: Callable[[T], np.ndarray],
                        batch_size: int) -> Iterator[Classified[T]]:
    """Every item, in input order, with its labels or with the FrameError that kept it from being
    classified. `to_frame` turns an item (a message, a bag record, a path) into an HxWx3 uint8 RGB
    frame and raises FrameError for one that cannot be used: that item alone is rejected. Frames are
    classified `batch_size` at a time; a result's timings are its batch's (FrameLabels.per_frame_ms)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[Classified[T]] = []
    frames = 0
    for item in items:
        try:
            pending.append(Classified(item, frame=to_frame(item)))
            frames += 1
        except FrameError as e:
            pending.append(Classified(item, error=e))
        if frames == batch_size:
            yield from _classify(classifier, pending)
            pending, frames = [], 0
    if pending:
        yield from _classify(classifier, pending)


def _classify(classifier, pending: list[Classified[T]]) -> Iterator[Classified[T]]:
    frames = [c.frame for c in pending if c.error is None]
    labels = iter(classifier.classify(frames) if frames else ())
    for c in pending:
        yield c if c.error is not None else Classified(c.item, c.frame, next(labels))
