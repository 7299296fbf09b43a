"""novic-classify IMAGE... : name what each image shows, with no label list."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..core.errors import FrameError
from ..params import add_model_arguments, model_params_from_args
from .common import run, setup_logging


def read_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert('RGB'))
    except FileNotFoundError:
        raise FrameError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise FrameError(f"{path}: cannot read as an image ({e})") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-classify', description=__doc__)
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files (any format Pillow reads)')
    p.add_argument('--json', action='store_true', help='print one JSON list: [{"image", "labels": [{"label", "score"}]}]')
    p.add_argument('-v', '--verbose', action='store_true', help='log model loading and timings')
    add_model_arguments(p)
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    from ..core.loader import build_classifier
    params = model_params_from_args(args)
    clf = build_classifier(params)
    results, failed = [], 0
    frames, paths = [], []
    for path in args.images:
        try:
            frames.append(read_image(path))
            paths.append(path)
        except FrameError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            results.append({'image': path, 'error': str(e), 'labels': []})
    by_path = {}
    for start in range(0, len(frames), params.batch_size):
        for path, res in zip(paths[start:start + params.batch_size],
                             clf.classify(frames[start:start + params.batch_size])):
            by_path[path] = res
    for path in args.images:
        if path in by_path:
            results.append({'image': path, 'labels': by_path[path].to_json()})
    results.sort(key=lambda r: args.images.index(r['image']))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            labels = ', '.join(f"{l['label']} ({l['score']:.2f})" for l in r['labels']) or '(no label)'
            print(f"{r['image']}: {labels if 'error' not in r else 'ERROR ' + r['error']}")
    return 2 if failed == len(args.images) else (1 if failed else 0)


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
