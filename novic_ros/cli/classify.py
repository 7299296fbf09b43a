"""novic-classify IMAGE... : name what each image shows, with no label list."""
from __future__ import annotations

import argparse
import json
import sys
from functools import partial

from ..image_files import read_image
from ..params import add_model_arguments, model_params_from_args
from ..pipeline import build_classifier, classify_in_batches
from .common import run, setup_logging


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
    params = model_params_from_args(args)
    clf = build_classifier(params)
    results = []
    for c in classify_in_batches(clf, args.images, partial(read_image, max_pixels=params.max_pixels),
                                 params.batch_size):
        if c.error is not None:
            print(f"error: {c.error}", file=sys.stderr)
            results.append({'image': c.item, 'error': str(c.error), 'labels': []})
        else:
            results.append({'image': c.item, 'labels': c.labels.to_json()})
    failed = sum('error' in r for r in results)
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
