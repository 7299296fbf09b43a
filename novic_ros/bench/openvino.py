"""The CPU backends side by side: ONNX Runtime fp32 and int8 against OpenVINO fp32, bf16 and int8,
ViT-B/32 + decoder (random weights) latency at batch 1 and 8, and top-1 agreement with ONNX
Runtime fp32 on toy renders (the toy variant's bundle), on the CPU named with its relevant flags."""
from __future__ import annotations

import importlib.util

import numpy as np

from ..backends.devices import cpu_bf16, cpu_flags, cpu_model
from ..params import ModelParams
from ..pipeline import build_classifier
from ..training import toy_world
from .models import TYPICAL_STEPS, b32_models_file, bench_dir
from .runtime import toy_bundle
from .sections import _table, frames_640x480
from .timing import interleaved

FLAGS = ('amx_bf16', 'amx_int8', 'amx_tile', 'avx512_bf16', 'avx512_fp16', 'avx512_vnni', 'avx_vnni', 'avx512f', 'avx2')
TARGETS = {'bf16': 0.99, 'int8': 0.97}


def candidates() -> list[tuple[str, str, str]]:
    """(name, backend, precision) of every CPU candidate this machine can run."""
    out = [('ORT fp32', 'onnxruntime', 'fp32'), ('ORT int8', 'onnxruntime', 'int8')]
    if importlib.util.find_spec('openvino') is not None:
        out += [('OV fp32', 'openvino', 'fp32')]
        if cpu_bf16():
            out += [('OV bf16', 'openvino', 'bf16')]
        out += [('OV int8', 'openvino', 'int8')]
    return out


def cpu_line() -> str:
    flags = cpu_flags()
    return f"{cpu_model()}; flags: {', '.join(f for f in FLAGS if f in flags) or 'none of ' + ', '.join(FLAGS)}"


def _build(model: str, backend: str, precision: str, **kw):
    return build_classifier(ModelParams(model=model, backend=backend, device='cpu', precision=precision,
                                        engine_dir=str(bench_dir() / 'engines'), **kw))


def openvino(repeat: int) -> str:
    cands = candidates()
    models = str(b32_models_file())
    clfs = {name: _build('b32-random', be, p, models_file=models, beam_width=5, top_k=3, max_tokens=TYPICAL_STEPS)
            for name, be, p in cands}
    t, cold = {}, {}
    for b in (1, 8):
        frames = frames_640x480(b, seed=b)
        fns = {}
        for name, clf in clfs.items():
            pixels = clf.preprocess(frames)
            fns[(name, b, 'enc')] = lambda clf=clf, p=pixels: clf.backend.encode_images(p)
            fns[(name, b, 'frame')] = lambda clf=clf, f=frames: clf.classify(f)
        # Warm: each turn runs a candidate 3 times in a row (a node runs one model); cold: one call a turn,
        # just after the other candidates had the CPU's caches.
        t.update(interleaved(fns, repeat, burst=3))
        cold.update(interleaved(fns, repeat))
    bundle = str(toy_bundle())
    renders = toy_world.render_set(3, (240, 320), seed=2026)
    frames = [x.image for x in renders]
    tops = {}
    for name, be, p in cands:
        clf = _build(bundle, be, p)
        tops[name] = [r.top.text if r.top else '' for r in clf.classify(frames)]
    ref = tops['ORT fp32']
    base1, base8 = t[('ORT fp32', 1, 'frame')], t[('ORT fp32', 8, 'frame')]
    rows = []
    for name, _, p in cands:
        agree = np.mean([a == b for a, b in zip(tops[name], ref)])
        target = f" (target >= {TARGETS[p]:.0%})" if p in TARGETS and name.startswith('OV') else ''
        rows.append(
            [
                name,
                t[(name, 1, 'enc')],
                t[(name, 1, 'frame')],
                cold[(name, 1, 'frame')],
                t[(name, 8, 'enc')],
                t[(name, 8, 'frame')],
                t[(name, 8, 'frame')] / 8,
                f"{base1 / t[(name, 1, 'frame')]:.2f}x / {base8 / t[(name, 8, 'frame')]:.2f}x",
                f"{agree:.1%}{target}",
            ]
        )
    table = _table(['candidate', 'encode b1 ms', 'full frame b1 ms (target <= 25)', 'b1 cold ms', 'encode b8 ms',
                    'full frame b8 ms',
                    'b8 ms/frame (target <= 12)', 'frame speed-up vs ORT fp32 b1 / b8',
                    f'toy top-1 = ORT fp32 ({len(frames)} renders)'], rows)
    missing = '' if any(n.startswith('OV') for n, _, _ in cands) else \
        "\n\nopenvino is not installed (pip install novic_ros[openvino]): OpenVINO rows left out."
    no_bf16 = '' if cpu_bf16() else "\n\nThis CPU has no AMX / AVX512_BF16: OpenVINO bf16 is refused here, left out."
    return (f"CPU: {cpu_line()}.\n\n" + table + missing + no_bf16 +
            f"\n\n(full frame = preprocess 640x480 + encode + beam 5 over a typical label of {TYPICAL_STEPS} steps; "
            "medians of the warm turns, 3 calls in a row of which the last 2 timed, candidates alternating; "
            "b1 cold: one call a turn, just after the other candidates ran)")
