"""Benchmark section `objects`: what the multi-object mode costs against the single-label frame,
640x480 multi-object toy scenes, the same backend, measured interleaved in one run.

Two model sizes: the toy CLIP (the one the study's accuracy is measured on; its encoder is tiny, so
the windows' preprocessing and the decoder dominate) and ViT-B/32 with random weights (a real
encoder's cost; proposals come from the pixels, not the weights, so the number of windows is what
a real ViT-B/32 would see). The issue's target is at most 4x the single-label frame time."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..params import ModelParams
from ..pipeline import build_classifier, build_object_finder
from ..training.toy_scenes import render_scenes
from .models import TYPICAL_STEPS, b32_models_file
from .timing import interleaved

SCENE_SEED = 77


def _table(rows: list[list]) -> str:
    lines = ['| model, object_proposals | backend | windows per frame | single-label ms | objects ms | objects / single-label (target <= 4) |',
             '|---|---|---|---|---|---|']
    lines += [f"| {m} | {b} | {w:.1f} | {s:.1f} | {o:.1f} | {o / s:.1f} |" for m, b, w, s, o in rows]
    return '\n'.join(lines)


def objects_cost(repeat: int, backend: str = 'onnxruntime', frames: int = 4) -> str:
    scenes = [s.image for s in render_scenes(frames, SCENE_SEED)]
    b32 = ModelParams(model='b32-random', models_file=str(b32_models_file()), backend=backend, max_tokens=TYPICAL_STEPS)
    runs = {'toy, 16': ModelParams(model='toy', backend=backend), 'ViT-B/32 (random weights), 16': b32,
            'ViT-B/32 (random weights), 4': replace(b32, object_proposals=4)}
    rows, classifiers = [], {}
    for name, params in runs.items():
        if params.model not in classifiers:
            classifiers[params.model] = build_classifier(params)
        clf = classifiers[params.model]
        finder = build_object_finder(clf, params)
        windows = float(np.mean([f.windows for f in finder.classify(scenes)]))
        fns = {}
        for i, frame in enumerate(scenes):          # batch 1, as the node sees a single camera
            fns[('single', i)] = lambda f=frame: clf.classify(f)
            fns[('objects', i)] = lambda f=frame: finder.classify(f)
        t = interleaved(fns, repeat)
        single = float(np.mean([t[('single', i)] for i in range(len(scenes))]))
        objects = float(np.mean([t[('objects', i)] for i in range(len(scenes))]))
        rows.append([name, clf.backend.name, windows, single, objects])
    return _table(rows)
