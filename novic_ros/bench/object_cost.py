"""Benchmark section `objects`: what the multi-object mode costs against the single-label frame,
640x480 multi-object toy scenes, the same backend, measured interleaved in one run.

Two model sizes: the toy CLIP (the one the study's accuracy is measured on; its encoder is tiny, so
the windows' preprocessing and the decoder dominate) and ViT-B/32 with random weights (a real
encoder's cost; proposals come from the pixels, not the weights, so the number of windows is what
a real ViT-B/32 would see). ViT-B/32 runs on ONNX Runtime fp32 and on the CPU's fast backends
(OpenVINO bf16 where the CPU has AMX or AVX512_BF16 and OpenVINO int8, as the `openvino` section
lists them; ONNX Runtime int8 without OpenVINO): the windows are one encoder batch, which AMX runs far faster per
image than single frames; without AMX which one is fastest depends on the CPU, so both are timed. The windows
and labels do not depend on the backend's speed, so the toy F1 (README) holds. The issue's target
is at most 4x the single-label frame time."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..params import ModelParams
from ..pipeline import build_classifier, build_object_finder
from ..training.toy_scenes import render_scenes
from .models import TYPICAL_STEPS, b32_models_file
from .openvino import candidates
from .timing import interleaved

SCENE_SEED = 77


def fast_backends() -> list[tuple[str, str]]:
    """(backend, precision) of the CPU's fast paths, as the `openvino` section lists this machine's
    candidates: OpenVINO bf16 (where the CPU has it) and int8; ONNX Runtime int8 without OpenVINO."""
    fast = [(backend, precision) for _, backend, precision in candidates()
            if backend == 'openvino' and precision != 'fp32']
    return fast or [('onnxruntime', 'int8')]


def _table(rows: list[list]) -> str:
    lines = ['| model, object_proposals | backend | windows per frame | single-label ms | objects ms | '
             'objects / single-label (target <= 4) |',
             '|---|---|---|---|---|---|']
    lines += [f"| {m} | {b} | {w:.1f} | {s:.1f} | {o:.1f} | {o / s:.1f} |" for m, b, w, s, o in rows]
    return '\n'.join(lines)


def objects_cost(repeat: int, backend: str = 'onnxruntime', frames: int = 4) -> str:
    scenes = [s.image for s in render_scenes(frames, SCENE_SEED)]
    b32 = ModelParams(model='b32-random', models_file=str(b32_models_file()), backend=backend, max_tokens=TYPICAL_STEPS)
    runs = {'toy, 16': ModelParams(model='toy', backend=backend), 'ViT-B/32 (random weights), 16': b32,
            'ViT-B/32 (random weights), 4': replace(b32, object_proposals=4)}
    for fast, precision in fast_backends():
        runs[f'ViT-B/32 (random weights), 16, {fast} {precision}'] = replace(b32, backend=fast, precision=precision)
    rows, classifiers = [], {}
    for name, params in runs.items():
        key = (params.model, params.backend, params.precision)
        if key not in classifiers:
            classifiers[key] = build_classifier(params)
        clf = classifiers[key]
        finder = build_object_finder(clf, params)
        windows = float(np.mean([f.windows for f in finder.classify(scenes)]))
        fns = {}
        for i, frame in enumerate(scenes):          # batch 1, as the node sees a single camera
            fns[('single', i)] = lambda f=frame: clf.classify(f)
            fns[('objects', i)] = lambda f=frame: finder.classify(f)
        t = interleaved(fns, repeat)
        single = float(np.mean([t[('single', i)] for i in range(len(scenes))]))
        objects = float(np.mean([t[('objects', i)] for i in range(len(scenes))]))
        backend_name = f"{clf.backend.name} {getattr(clf.backend, 'precision', '')}".strip()
        rows.append([name, backend_name, windows, single, objects])
    return _table(rows)
