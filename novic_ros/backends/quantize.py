"""int8 graphs for ONNX Runtime on the CPU, made from a bundle's fp32 graphs and stored in it.

Dynamic quantisation: weights are stored as int8 (per output channel), activations are quantised
at run time, and MatMul runs on ONNX Runtime's integer kernels (VNNI on CPUs that have it: AVX512-
VNNI or AVX-VNNI on x86, the dot-product instructions on ARM). It needs no calibration images.
Static quantisation (activations with fixed ranges from calibration renders, QOperator or QDQ) was
measured faster on ViT-B/32 (2.9x against fp32, dynamic 2.2x) but agreed with fp32 on only 88% of
toy renders (dynamic: 99%): the ranges of a ViT's activations vary too much from image to image.

Needs the onnx package (an export-side tool); a runtime install loads bundles that carry int8
graphs already (novic-export --precisions fp32,int8).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from onnxruntime.quantization import QuantType, quantize_dynamic

from ..core.bundle import DECODER_PREFILL, DECODER_STEP, IMAGE_ENCODER, Bundle, add_graphs, graph_file, read_bundle
from ..core.errors import ModelLoadError

log = logging.getLogger(__name__)
QUANTISED = (IMAGE_ENCODER, DECODER_PREFILL, DECODER_STEP)


class _QuietPreprocessingHint(logging.Filter):
    """onnxruntime.quantization suggests its pre-processing on the root logger for every graph; that
    step (symbolic shape inference) fails on our exported graphs' external weights, and dynamic
    quantisation does not need it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return 'pre-processing before quantization' not in record.getMessage()


def quantize_bundle(folder: str | os.PathLike) -> Bundle:
    """Add the int8 graph of every quantisable fp32 graph the bundle in `folder` has."""
    folder = Path(folder)
    bundle = read_bundle(folder, check=False)
    added = {}
    hint = _QuietPreprocessingHint()
    logging.getLogger().addFilter(hint)
    try:
        _quantize_graphs(folder, bundle, added)
    finally:
        logging.getLogger().removeFilter(hint)
    log.info("int8 graphs of %s: %s", folder, ', '.join(added) or 'all present')
    return add_graphs(folder, added) if added else bundle


def _quantize_graphs(folder: Path, bundle: Bundle, added: dict) -> None:
    for graph in QUANTISED:
        if not bundle.has_graph(graph) or bundle.has_graph(graph, 'int8'):
            continue
        name = graph_file(graph, 'int8')
        tmp = folder / (name + '.tmp')
        try:
            quantize_dynamic(bundle.graph(graph), tmp, weight_type=QuantType.QInt8, per_channel=True)
            os.replace(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        added[graph] = {'int8': name}


def ensure_int8(bundle: Bundle) -> Bundle:
    """The bundle with its int8 graphs, quantised now where they are missing (once: they are kept in
    the bundle). A bundle in a folder we cannot write is an error naming the fix."""
    if all(bundle.has_graph(g, 'int8') for g in QUANTISED if bundle.has_graph(g)):
        return bundle
    if not os.access(bundle.folder, os.W_OK):
        raise ModelLoadError(f"bundle {bundle.folder} has no int8 graphs and is not writable; export it with "
                              f"`novic-export --model {bundle.variant} --precisions fp32,int8`")
    log.info("quantising %s to int8 (once; kept in the bundle)", bundle.folder)
    return quantize_bundle(bundle.folder)
