"""novic-build-engines --model VARIANT --precision fp16 : build the TensorRT engines ahead of time
(so a robot does not wait at first boot) into the engine cache, or report that they are current."""
from __future__ import annotations

import argparse
import sys

from ..params import add_model_arguments
from .common import run, setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-build-engines', description=__doc__)
    add_model_arguments(p, ('model', 'models_file'))       # the same flags as every other tool
    p.add_argument('--precision', default='fp16', choices=('fp16', 'fp32'), help='image encoder precision (default fp16)')
    p.add_argument('--batch-size', type=int, default=8, help='largest batch the engines accept (default 8)')
    p.add_argument('--beam-width', type=int, default=5, help='beam width the decoder engines must serve (default 5)')
    p.add_argument('--device', default='cuda', help='CUDA device (default cuda)')
    p.add_argument('--engine-dir', default='')
    p.add_argument('-v', '--verbose', action='store_true')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    from ..backends import create_backend, resolve_engine_dir
    from ..backends.trt_backend import TensorRTUnavailable, require_tensorrt
    from ..core.checkpoint import load_decoder
    from ..core.clip_encoder import ClipEncoder
    from ..core.variants import get_variant
    try:
        require_tensorrt()
    except TensorRTUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    variant = get_variant(args.model, args.models_file or None)
    encoder = ClipEncoder(variant.clip, args.device, args.precision)
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
