"""novic-classify IMAGE... : name what each image shows, with no label list."""
from __future__ import annotations

import argparse
import json
import sys
from functools import partial

from ..image_files import read_image
from ..lexicon.categories import CategoryMap
from ..params import add_model_arguments, model_params_from_args
from ..pipeline import build_classifier, classify_in_batches
from .common import run, setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-classify', description=__doc__)
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files (any format Pillow reads)')
    p.add_argument('--json', action='store_true', help='print one JSON list: [{"image", "labels": [{"label", "score", '
                   '"category", "sense", "hypernyms"}], "categories": [{"category", "score"}]}]')
    p.add_argument('-v', '--verbose', action='store_true', help='log model loading and timings')
    add_model_arguments(p)
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    params = model_params_from_args(args)
    cats = category_map(params.categories) if args.json else None    # a bad category fails before the model loads
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
        if cats is not None:
            add_categories(results, cats)
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            labels = ', '.join(f"{l['label']} ({l['score']:.2f})" for l in r['labels']) or '(no label)'
            print(f"{r['image']}: {labels if 'error' not in r else 'ERROR ' + r['error']}")
    return 2 if failed == len(args.images) else (1 if failed else 0)


def category_map(categories) -> CategoryMap | None:
    """The categories of --json; without WordNet they are left out, with a warning."""
    try:
        return CategoryMap.load(categories)
    except FileNotFoundError as e:
        print(f"warning: no categories in the output: {e}", file=sys.stderr)
        return None


def add_categories(results: list[dict], cats: CategoryMap) -> None:
    """Each label's category, WordNet sense and hypernym chain, and each image's category scores
    (as the node's categories topic)."""
    for r in results:
        for label in r['labels']:
            label.update(cats.categorise(label['label']).to_json())
        r['categories'] = [{'category': c, 'score': round(s, 6)}
                           for c, s in cats.scores((l['label'], l['score']) for l in r['labels'])]


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
