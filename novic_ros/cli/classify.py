"""novic-classify IMAGE... : name what each image shows, with no label list (--objects: every object
in it, each with a label, a score and a pixel box)."""
from __future__ import annotations

import argparse
import json
import sys
from functools import partial

from ..frames.image_files import image_inputs, read_image
from ..lexicon.categories import CategoryMap
from ..params import add_model_arguments, model_params_from_args
from ..pipeline import build_classifier, build_object_finder, classify_in_batches
from .common import run, setup_logging


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='novic-classify', description=__doc__)
    p.add_argument('images', nargs='+', metavar='IMAGE',
                   help='image files (any format Pillow reads), folders (their images) or quoted patterns '
                        "('shots/*.jpg'); every one is checked before the model loads")
    p.add_argument('--json', action='store_true', help='print one JSON list: [{"image", "labels": [{"label", "score", '
                   '"category", "sense", "hypernyms"}], "categories": [{"category", "score"}]}] (with --objects: '
                   '[{"image", "objects": [{"label", "score", "box": [x0, y0, x1, y1]}]}])')
    p.add_argument('--objects', action='store_true', help='name every object of each image, with its box in pixels '
                   '(the object_* parameters below), instead of labelling the whole image')
    p.add_argument('-v', '--verbose', action='store_true', help='log model loading and timings')
    add_model_arguments(p)
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    params = model_params_from_args(args)
    key = 'objects' if args.objects else 'labels'
    # A bad category fails before the model loads; objects carry no categories (label, score, box only).
    cats = category_map(params.categories) if args.json and not args.objects else None
    inputs = image_inputs(args.images)
    for _, why in inputs.errors:     # each once, on stderr; stdout holds results only
        print(f"error: {why}", file=sys.stderr)
    found: dict[str, dict] = {}
    if not inputs.files:
        print("error: no image to classify; the model was not loaded", file=sys.stderr)
    else:
        clf = build_classifier(params)
        for c in classify_in_batches(build_object_finder(clf, params) if args.objects else clf, inputs.files,
                                     partial(read_image, max_pixels=params.max_pixels), params.batch_size):
            if c.error is not None:
                print(f"error: {c.error}", file=sys.stderr)
                found[c.item] = {'image': c.item, 'error': str(c.error), key: []}
            else:
                found[c.item] = {'image': c.item, key: c.labels.to_json()}
    # In the order given (a file named twice is listed twice).
    results = [found[name] if why is None else {'image': name, 'error': why, key: []} for name, why in inputs.items]
    failed = sum('error' in r for r in results)
    if args.json:
        if cats is not None:
            add_categories(results, cats)
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            if 'error' not in r:
                print(f"{r['image']}: {_describe(r[key], key)}")
    return 1 if failed else 0


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


def _describe(found: list[dict], key: str) -> str:
    """'dog (0.93), cat (0.41)', with ' at [x0, y0, x1, y1]' for objects."""
    parts = [
        f"{x['label']} ({x['score']:.2f})" + (f" at [{', '.join(f'{v:.0f}' for v in x['box'])}]" if 'box' in x else '')
        for x in found
    ]
    return ', '.join(parts) or ('(no object)' if key == 'objects' else '(no label)')


def main(argv=None) -> int:
    return run(_main, argv)


if __name__ == '__main__':
    sys.exit(main())
