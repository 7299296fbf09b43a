"""Candidates for preprocessing under 1 ms (640x480 -> 224x224, ViT-B/32's config), timed side by
side against the exact path (Pillow: open_clip's pixels to the bit), each with its pixel difference
from the exact output in 8-bit levels: where the time goes (Pillow's bicubic resize, the
normalisation) and what each shortcut costs in fidelity. The default ('fast': Pillow's filter as
banded float32 matrix products, core/preprocess.BandedResampler) is one of them; its effect on
labels is measured on toy renders (the toy model's top-1 with fast against exact preprocessing)."""
from __future__ import annotations

import io
import resource

import numpy as np
from PIL import Image

from ..core.preprocess import Preprocessor, PreprocessConfig, _geometry
from ..pipeline import build_classifier
from ..params import ModelParams
from ..training import toy_world
from .runtime import toy_bundle
from .sections import _table, frames_640x480
from .timing import interleaved

CFG = PreprocessConfig((224, 224), (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
BICUBIC = Image.Resampling.BICUBIC
EXACT = 'exact: whole preprocess (Pillow, open_clip to the bit)'
FAST = 'fast (default): banded float32 matrix products, normalised'


def _window_box(h: int, w: int, scale: float = 1.0) -> tuple[float, float, float, float]:
    """The source box whose resize to 224x224 is today's resize-then-center-crop (scale: of a reduced copy)."""
    g = _geometry(h, w, CFG)
    sy, sx = h / g.resize[0], w / g.resize[1]
    return (g.left * sx / scale, g.top * sy / scale, (g.left + 224) * sx / scale, (g.top + 224) * sy / scale)


def candidates(repeat: int) -> str:
    frame = frames_640x480(1)[0]
    h, w = frame.shape[:2]
    pre, fast = Preprocessor(CFG, 'exact'), Preprocessor(CFG)
    g = _geometry(h, w, CFG)
    img = Image.fromarray(frame)
    jpeg = io.BytesIO()
    img.save(jpeg, 'JPEG', quality=90)
    data = jpeg.getvalue()
    box, box2 = _window_box(h, w), _window_box(h, w, 2.0)

    def today_u8():
        return np.asarray(img.resize(g.resize[::-1], BICUBIC))[g.top:g.top + 224, g.left:g.left + 224]

    def window_u8():
        return np.asarray(img.resize((224, 224), BICUBIC, box=box))

    def reduce2_u8():
        return np.asarray(img.reduce(2).resize((224, 224), BICUBIC, box=box2))

    def jpeg_full_u8():
        return np.asarray(Image.open(io.BytesIO(data)).convert('RGB').resize(g.resize[::-1], BICUBIC))[
            g.top:g.top + 224, g.left:g.left + 224]

    def jpeg_draft_u8():
        im = Image.open(io.BytesIO(data))
        im.draft('RGB', (w // 2, h // 2))            # DCT scaling: decoded at half size
        return np.asarray(im.convert('RGB').resize((224, 224), BICUBIC, box=box2))

    x = np.ascontiguousarray(today_u8())
    out = np.empty((1, 3, 224, 224), np.float32)
    fns = {EXACT: lambda: pre(frame),
           FAST: lambda: fast(frame),
           'exact: Pillow resize 640x480 -> 298x224 only': lambda: img.resize(g.resize[::-1], BICUBIC),
           'exact: normalise only': lambda: pre._normalize(x, out[0]),
           'resize only the visible window (Pillow box)': window_u8,
           'reduce(2) then window': reduce2_u8,
           'JPEG: full decode + today\'s resize': jpeg_full_u8,
           'JPEG: draft (half-size decode) + window': jpeg_draft_u8}
    t = interleaved(fns, repeat)
    faults = {name: _faults_per_call(fns[name]) for name in (EXACT, FAST)}
    ref, ref_jpeg = today_u8().astype(np.int16), jpeg_full_u8().astype(np.int16)
    std = np.asarray(CFG.std, np.float32)[:, None, None]
    diffs = {FAST: (fast(frame) - pre(frame))[0] * 255 * std,
             'resize only the visible window (Pillow box)': window_u8().astype(np.int16) - ref,
             'reduce(2) then window': reduce2_u8().astype(np.int16) - ref,
             'JPEG: draft (half-size decode) + window': jpeg_draft_u8().astype(np.int16) - ref_jpeg}
    rows = []
    for name, ms in t.items():
        d = diffs.get(name)
        rows.append([name, ms, '0 (reference)' if d is None else
                     f"max {float(np.abs(d).max()):.2f}, mean {float(np.abs(d).mean()):.2f}, "
                     f"{float((np.abs(d) >= 0.5).mean()):.2%} differ by half a level or more"])
    table = _table(['candidate, one 640x480 frame', 'ms', 'difference from exact, 8-bit levels'], rows)
    paging = '; '.join(f"{name.split(':')[0].split(' (')[0]} {n:.1f}" for name, n in faults.items())
    return (table + f"\n\nMinor page faults a frame (fresh memory the kernel maps in): {paging}.\n\n"
            + label_effect())


def _faults_per_call(fn, calls: int = 50) -> float:
    """Minor page faults of this process per call of `fn`, after a few calls to settle."""
    for _ in range(5):
        fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def label_effect() -> str:
    """The toy model's labels with fast against exact preprocessing, on toy renders at two sizes."""
    clf = build_classifier(ModelParams(model=str(toy_bundle()), backend='onnxruntime', top_k=3))
    exact = Preprocessor(clf.clip.preprocess, 'exact')
    lines = []
    for size, seed in (((240, 320), 2026), ((480, 640), 7)):
        frames = [x.image for x in toy_world.render_set(3 if size[0] == 240 else 1, size, seed=seed)]
        e, f = clf.encode(exact(frames)), clf.encode(clf.preprocess(frames))
        exact_top, fast_top = ([r[0].text if r else '' for r in clf.labels_for_embeddings(x)] for x in (e, f))
        same = np.mean([a == b for a, b in zip(fast_top, exact_top)])
        cos = float(np.min(np.sum(e * f, axis=1) / np.linalg.norm(e, axis=1) / np.linalg.norm(f, axis=1)))
        lines.append(f"{len(frames)} toy renders {size[1]}x{size[0]}: top-1 the same {same:.1%}, "
                     f"embedding cosine fast/exact >= {cos:.6f}")
    return 'Labels (toy model, onnxruntime), fast vs exact preprocessing: ' + '; '.join(lines) + '.'

