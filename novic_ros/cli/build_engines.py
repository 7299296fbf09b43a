"""novic-build-engines --model VARIANT --precision fp16 : build the TensorRT engines ahead of time
(so a robot does not wait at first boot) into the engine cache, or report that they are current."""
from __future__ import annotations

import argparse
import sys

from ..backends import create_backend, resolve_engine_dir
from ..backends.trt_backend import TensorRTUnavailable, require_tensorrt
from ..core.checkpoint import load_decoder
from ..core.clip_encoder import ClipEncoder, resolve_device, resolve_precision
from ..core.variants import get_variant
from ..params import add_model_arguments
from .common import run, setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-build-engines', description=__doc__)
    # The same flags, defaults and meaning as the node's parameters: engines built here are the ones
    # the node finds (batch_size and beam_width set the engines' largest batch).
    add_model_arguments(p, ('model', 'models_file', 'device', 'precision', 'batch_size', 'beam_width', 'engine_dir'))
    p.add_argument('-v', '--verbose', action='store_true')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        require_tensorrt()
    except TensorRTUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    variant = get_variant(args.model, args.models_file or None)
    device = resolve_device(args.device)
    encoder = ClipEncoder(variant.clip, device, resolve_precision(args.precision, device))
    decoder, vocab, _ = load_decoder(variant.decoder)
    backend = create_backend('tensorrt', encoder, decoder, vocab, variant=variant.name, decoder_dir=variant.decoder,
                             engine_dir=args.engine_dir, max_batch=args.batch_size, beam_width=args.beam_width)
    root = resolve_engine_dir(args.engine_dir)
    print(f"{backend.describe()}: {len(backend.built)} engine(s) built, others reused, in {root}")
    for stem in backend.built:
        print(f"  built {stem}")
    return 0


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
