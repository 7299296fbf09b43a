"""int8 graphs for OpenVINO, made from a bundle's fp32 ONNX graphs with NNCF and stored in it as
OpenVINO IR (<graph>.ov_int8.xml + .bin).

The image encoder is quantised statically (weights and activations int8, ranges from calibration
images) with NNCF's transformer scheme, which keeps the range-sensitive operations (softmax, layer
norm, the attention's scaling) in float; OpenVINO runs the rest on its int8 kernels (AMX, VNNI).
The decoder's graphs get int8 weights only (data-free weight compression): at batch 1 a decoding
step reads its weights once and does little arithmetic on them, so halving the bytes is what counts.

Calibration images come from the caller (`frames(n, seed)`: novic_ros/int8_calibration.py's toy renders
and installed photographs), preprocessed as the bundle says. Before the graphs are kept, the int8
encoder is checked against fp32 on images it was not calibrated on: a cosine below MIN_COSINE is an
error, not a quietly worse robot. The figures go into bundle.json (ov_int8).

Needs nncf and openvino (export-side tools: `pip install novic_ros[openvino]`); a runtime install
loads bundles that carry ov_int8 graphs already (novic-export --precisions fp32,ov_int8).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic_file import atomic_write_text
from ..core.bundle import (BUNDLE_FILE, DECODER_PREFILL, DECODER_STEP, IMAGE_ENCODER, Bundle, add_graphs,
                           graph_file, read_bundle)
from ..core.errors import ModelLoadError
from ..core.preprocess import Preprocessor

log = logging.getLogger(__name__)
QUANTISED = (IMAGE_ENCODER, DECODER_PREFILL, DECODER_STEP)
CALIBRATION_IMAGES = 48
CHECK_IMAGES = 16
MIN_COSINE = 0.98        # int8 against fp32 image embeddings, worst of the check images
CalibrationFrames = Callable[[int, int], list[np.ndarray]]     # (n, seed) -> n RGB frames, the same for a seed


def _import_nncf():
    # NNCF sends usage events to Google Analytics unless its CI switch is set: exporting on a robot
    # or a workstation must send nothing anywhere (the switch changes nothing else in NNCF).
    os.environ.setdefault('NNCF_CI', '1')
    import nncf
    return nncf


def quantize_bundle_ov(folder: str | os.PathLike, frames: CalibrationFrames) -> Bundle:
    """Add the OpenVINO int8 graph of every quantisable fp32 graph the bundle in `folder` has; the image
    encoder is calibrated on frames(CALIBRATION_IMAGES, 0) and checked on frames(CHECK_IMAGES, 1)."""
    nncf = _import_nncf()
    import openvino as ov
    folder = Path(folder)
    bundle = read_bundle(folder, check=False)
    core = ov.Core()
    pre = Preprocessor(bundle.clip.preprocess)
    added, report = {}, {}
    for graph in QUANTISED:
        if not bundle.has_graph(graph) or bundle.has_graph(graph, 'ov_int8'):
            continue
        model = core.read_model(str(bundle.graph(graph)))
        if graph == IMAGE_ENCODER:
            pixels = pre(frames(CALIBRATION_IMAGES, 0))
            data = nncf.Dataset([pixels[i:i + 1] for i in range(len(pixels))])
            q = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(pixels))
            report['encoder_min_cosine'] = _check_encoder(core, model, q, pre(frames(CHECK_IMAGES, 1)))
        else:
            q = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        name = graph_file(graph, 'ov_int8')
        tmp = folder / (name[:-4] + '.tmp.xml')
        try:
            ov.save_model(q, str(tmp), compress_to_fp16=False)
            os.replace(tmp.with_suffix('.bin'), folder / (name[:-4] + '.bin'))
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_suffix('.bin').unlink(missing_ok=True)
        added[graph] = {'ov_int8': name}
    log.info("OpenVINO int8 graphs of %s: %s %s", folder, ', '.join(added) or 'all present', report)
    if not added:
        return bundle
    bundle = add_graphs(folder, added)
    if report:
        meta = json.loads((folder / BUNDLE_FILE).read_text())
        meta['ov_int8'] = {**report, 'nncf': nncf.__version__, 'openvino': ov.__version__.split('-')[0],
                           'calibration_images': CALIBRATION_IMAGES}
        atomic_write_text(folder / BUNDLE_FILE, json.dumps(meta, indent=2) + '\n')
        bundle = read_bundle(folder)
    return bundle


def _check_encoder(core, fp32_model, int8_model, pixels: np.ndarray) -> float:
    """The worst cosine between int8 and fp32 embeddings of `pixels` (images not used for calibration);
    an error below MIN_COSINE (the quantised graph is then not kept)."""
    ref = core.compile_model(fp32_model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})(pixels)[0]
    got = core.compile_model(int8_model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})(pixels)[0]
    cos = float(np.min(np.sum(ref * got, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))))
    if cos < MIN_COSINE:
        raise ModelLoadError(f"OpenVINO int8 image encoder agrees poorly with fp32 (worst cosine {cos:.4f} < "
                             f"{MIN_COSINE}); use precision bf16 or fp32 for this model")
    return round(cos, 5)


def ensure_ov_int8(bundle: Bundle, frames: CalibrationFrames) -> Bundle:
    """The bundle with its OpenVINO int8 graphs, quantised now on `frames` where they are missing (once:
    they are kept in the bundle). A bundle in a folder we cannot write, or no nncf, is an error naming the fix."""
    if all(bundle.has_graph(g, 'ov_int8') for g in QUANTISED if bundle.has_graph(g)):
        return bundle
    if not os.access(bundle.folder, os.W_OK):
        raise ModelLoadError(f"bundle {bundle.folder} has no OpenVINO int8 graphs and is not writable; export it with "
                             f"`novic-export --model {bundle.variant} --precisions fp32,ov_int8`")
    try:
        _import_nncf()                 # optional: quantising is an export-side step
    except ImportError:
        raise ModelLoadError(f"bundle {bundle.folder} has no OpenVINO int8 graphs and making them needs nncf: "
                             "`pip install novic_ros[openvino]`, or export the bundle with --precisions fp32,ov_int8 "
                             "where it is installed") from None
    log.info("quantising %s to OpenVINO int8 (once; kept in the bundle)", bundle.folder)
    return quantize_bundle_ov(bundle.folder, frames)
