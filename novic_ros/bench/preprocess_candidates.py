"""Candidates for preprocessing under 1 ms (640x480 -> 224x224, ViT-B/32's config), timed side by
side against what runs today (open_clip's pixels to the bit), each with its pixel difference from
today's output in 8-bit levels: where the time goes (Pillow's bicubic resize, the normalisation) and
what each shortcut would cost in fidelity. Nothing here is used by the product yet."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..core.preprocess import Preprocessor, PreprocessConfig, _geometry
from .sections import _table, frames_640x480
from .timing import interleaved

CFG = PreprocessConfig((224, 224), (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
BICUBIC = Image.Resampling.BICUBIC


def _window_box(h: int, w: int, scale: float = 1.0) -> tuple[float, float, float, float]:
    """The source box whose resize to 224x224 is today's resize-then-center-crop (scale: of a reduced copy)."""
    g = _geometry(h, w, CFG)
    sy, sx = h / g.resize[0], w / g.resize[1]
    return (g.left * sx / scale, g.top * sy / scale, (g.left + 224) * sx / scale, (g.top + 224) * sy / scale)


def candidates(repeat: int) -> str:
    frame = frames_640x480(1)[0]
    h, w = frame.shape[:2]
    pre = Preprocessor(CFG)
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
    fns = {'today: whole preprocess (exact)': lambda: pre(frame),
           'today: Pillow resize 640x480 -> 298x224 only': lambda: img.resize(g.resize[::-1], BICUBIC),
           'today: normalise only': lambda: pre._normalize(x, out[0]),
           'resize only the visible window (Pillow box)': window_u8,
           'reduce(2) then window': reduce2_u8,
           'JPEG: full decode + today\'s resize': jpeg_full_u8,
           'JPEG: draft (half-size decode) + window': jpeg_draft_u8}
    t = interleaved(fns, repeat)
    ref, ref_jpeg = today_u8().astype(np.int16), jpeg_full_u8().astype(np.int16)
    diffs = {'resize only the visible window (Pillow box)': window_u8().astype(np.int16) - ref,
             'reduce(2) then window': reduce2_u8().astype(np.int16) - ref,
             'JPEG: draft (half-size decode) + window': jpeg_draft_u8().astype(np.int16) - ref_jpeg}
    rows = []
    for name, ms in t.items():
        d = diffs.get(name)
        rows.append([name, ms, '0 (reference)' if d is None else
                     f"max {int(np.abs(d).max())}, mean {float(np.abs(d).mean()):.2f}, {float((d != 0).mean()):.2%} differ"])
    return _table(['candidate, one 640x480 frame', 'ms', 'difference from today, 8-bit levels'], rows)
