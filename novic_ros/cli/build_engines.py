"""novic-build-engines --model VARIANT|BUNDLE --precision fp16 : build the TensorRT engines ahead of
time (so a robot does not wait at first boot) into the engine cache, or report that they are
current. Run it on the robot: an engine is built for one GPU and TensorRT version."""
from __future__ import annotations

import argparse
import sys

from ..backends import resolve_engine_dir
from ..backends.trt_backend import TensorRTUnavailable, require_tensorrt
from ..params import ModelParams, add_model_arguments
from ..pipeline import build_classifier
from .common import run, setup_logging

FLAGS = ('model', 'models_file', 'device', 'precision', 'batch_size', 'beam_width', 'engine_dir')


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-build-engines', description=__doc__)
    # The same flags, defaults and meaning as the node's parameters: engines built here are the ones
    # the node finds (batch_size and beam_width set the engines' largest batch).
    add_model_arguments(p, FLAGS)
    p.add_argument('-v', '--verbose', action='store_true', help='log what loads and how long it takes (INFO)')
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        require_tensorrt()
    except TensorRTUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    params = ModelParams(backend='tensorrt', top_k=1, **{f: getattr(args, f) for f in FLAGS})
    backend = build_classifier(params).backend
    print(f"{backend.describe()}: {len(backend.built)} engine(s) built, others reused, in "
          f"{resolve_engine_dir(args.engine_dir)}")
    for stem in backend.built:
        print(f"  built {stem}")
    return 0


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
