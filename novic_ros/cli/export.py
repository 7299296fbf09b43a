"""novic-export --model VARIANT [--out FOLDER] : export a variant to a deployable bundle: the image
encoder, the decoder (prefill and one-token step graphs with the key/value cache), CLIP's text
encoder, with dynamic batch, plus the tokenizer and label vocabularies and bundle.json. A robot
runs the bundle with the onnxruntime or tensorrt backend and needs no torch (README: Deploying).
Without --out the bundle goes to the engine cache, where the node looks for it."""
from __future__ import annotations

if __name__ == '__main__':
    # `python -m novic_ros.cli.export` goes through the console script's entry point, which says in one line
    # what to install when a library below is missing (torch_tools), instead of a traceback here.
    from novic_ros.cli.torch_tools import export as _entry_point
    raise SystemExit(_entry_point())

import argparse
import json
import sys

from ..backends import resolve_engine_dir
from ..backends.onnx_export import export_bundle, export_info
from ..core.bundle import IMAGE_ENCODER, PRECISIONS, read_bundle
from ..core.errors import ModelLoadError
from ..core.variants import get_variant
from ..int8_calibration import calibration_frames
from ..params import add_model_arguments
from ..torch_pipeline import load_models
from .common import run, setup_logging

DEFAULT_PRECISIONS = 'fp32,fp16,int8'


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-export', description=__doc__)
    add_model_arguments(p, ('model', 'models_file', 'engine_dir'))       # the same flags as every other tool
    p.add_argument('--out', default=None, metavar='FOLDER',
                   help='write the bundle to FOLDER (default: the engine cache, <engine_dir>/onnx/<key>)')
    p.add_argument('--precisions', default=DEFAULT_PRECISIONS,
                   help=f"graphs to include, comma-separated from {', '.join(PRECISIONS)} (fp32 always): fp16 for "
                        f"TensorRT on a GPU, int8 for ONNX Runtime on the CPU, ov_int8 for OpenVINO (needs nncf: "
                        f"novic_ros[openvino]) (default: {DEFAULT_PRECISIONS})")
    p.add_argument('--no-text-encoder', action='store_true',
                   help="leave CLIP's text tower out: generate mode only (prompted and hybrid modes then need torch); "
                        "saves its export time and size (ViT-H-14: 1.4 GB of fp32 weights)")
    p.add_argument('--force', action='store_true', help='export again even when an up-to-date bundle exists')
    p.add_argument('-v', '--verbose', action='store_true', help='log what loads and how long it takes (INFO)')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    asked = {x.strip() for x in args.precisions.split(',') if x.strip()} | {'fp32'}
    if asked - set(PRECISIONS):
        raise ValueError(
            f"--precisions: unknown {', '.join(sorted(asked - set(PRECISIONS)))}; choose from {', '.join(PRECISIONS)}"
        )
    precisions = [p for p in PRECISIONS if p in asked]
    variant = get_variant(args.model, args.models_file or None)
    if variant.bundle is not None:
        raise ModelLoadError(f"{args.model} is a bundle already; novic-export exports a variant of a models file "
                             "or a NOVIC checkpoint")
    encoder, decoder, vocab, novic = load_models(variant, 'cpu', 'fp32', with_decoder=variant.decoder.exists())
    if decoder is None:
        print(
            f"warning: {variant.decoder} does not exist: the bundle gets no decoder (prompted mode only)",
            file=sys.stderr,
        )
    info = export_info(variant.name, encoder, variant.decoder if decoder is not None else None)
    out = args.out or resolve_engine_dir(args.engine_dir) / 'onnx' / info.key
    bundle = _current(out, info.key, precisions, not args.no_text_encoder) if not args.force else None
    if bundle is None:
        bundle = export_bundle(info, encoder, decoder, vocab, out, precisions, text_encoder=not args.no_text_encoder,
                               novic=novic, calibration_frames=calibration_frames)
    size = sum(f['bytes'] for f in bundle.files.values())
    print(json.dumps({'folder': str(bundle.folder), 'key': bundle.key, 'created': bundle.meta['created'],
                      'graphs': bundle.graphs, 'megabytes': round(size / 2**20, 1),
                      'clip_fingerprint': bundle.clip.fingerprint, 'versions': bundle.meta['versions']}, indent=1))
    return 0


def _current(folder, key: str, precisions, text_encoder: bool = True):
    """The bundle in `folder` if it is this export with every precision asked for (and the text
    encoder, unless it was left out on request), else None."""
    try:
        b = read_bundle(folder)
    except ModelLoadError:
        return None
    text_ok = not text_encoder or not b.meta.get('text_encoder_left_out', False)
    return b if b.key == key and text_ok and all(b.has_graph(IMAGE_ENCODER, p) for p in precisions) else None


def main(argv=None) -> int:
    return run(_main, argv)

