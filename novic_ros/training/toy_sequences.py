"""Moving toy scenes with ground-truth identities: what object tracking (core/tracks.py) is measured on.

A sequence is a scripted camera shot over one static background (the toy world's, with clutter
that names nothing): pictograms enter, move in straight lines at constant speed, pass in front of
one another (drawn in script order, so a later object hides an earlier one), leave through an edge
and come back. Every frame carries each object's identity and its visible box (clipped to the
frame, None while it is out of view), and how much of it is visible (an occluded object is
partly covered by those drawn after it), so a tracker's ids and labels can be scored per object.

`default_script` is the shot the tests use: two to three objects moving, up to four in view,
over 90 frames: one occlusion, one object leaving, one entering, and one leaving and coming back
after two seconds. Reproducible from `seed`; the scene stream is apart from training's (toy_scenes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import toy_world
from .toy_scenes import SCENE_STREAM, _distractor

SEQUENCE_STREAM = SCENE_STREAM + 1      # apart from the still scenes' stream too


@dataclass(frozen=True)
class Motion:
    """One object of a shot: OBJECTS[index] of `side` px, at `start` (top-left, px) on frame `first`,
    moving `velocity` px per frame until frame `last` (inclusive). Several Motions with one
    `identity` are the same object seen again (it left and came back)."""
    identity: int
    index: int
    side: int
    first: int
    last: int
    start: tuple[float, float]
    velocity: tuple[float, float]

    def position(self, frame: int) -> tuple[float, float] | None:
        if not self.first <= frame <= self.last:
            return None
        t = frame - self.first
        return self.start[0] + t * self.velocity[0], self.start[1] + t * self.velocity[1]


@dataclass(frozen=True)
class SeenObject:
    identity: int
    label: str
    box: tuple[int, int, int, int]      # visible part of the pictogram's box, clipped to the frame
    visible: float                      # fraction of its opaque pixels that are visible (in frame, not covered)


@dataclass(frozen=True)
class SequenceFrame:
    image: np.ndarray                   # H x W x 3 uint8 RGB
    stamp: float                        # seconds from the first frame
    objects: tuple[SeenObject, ...]     # those at least partly visible


def default_script(size: tuple[int, int] = (480, 640), frames: int = 90) -> tuple[Motion, ...]:
    """The tests' shot (frame numbers at 10 Hz; `size` = (height, width)): a truck crosses from left
    to right in front of an apple (hidden for about 8 frames from frame 11) and leaves through the
    right edge around frame 31; a guitar drifts right, leaves around frame 30 and comes back from
    the right at frame 50 (2 s later); an elephant enters from the left at frame 35."""
    h, w = size
    truck, apple, guitar, elephant = (toy_world.NOUNS.index(n) for n in ('truck', 'apple', 'guitar', 'elephant'))
    big, small, mid = int(h * 0.3), int(h * 0.18), int(h * 0.22)
    return (
        Motion(2, apple, small, 0, frames - 1, (w * 0.5, h * 0.5 - small / 2), (0.0, 0.0)),   # still, drawn first
        Motion(1, truck, big, 0, frames - 1, (-big * 0.3, h * 0.5 - big / 2), (w / 32, 0.0)),  # passes over it
        Motion(3, guitar, mid, 0, 29, (w * 0.55, h * 0.04), (w * 0.012, 0.0)),                # leaves right
        Motion(3, guitar, mid, 50, frames - 1, (w - mid * 0.5, h * 0.04), (-w * 0.012, 0.0)),  # comes back
        Motion(4, elephant, mid, 35, frames - 1, (-mid * 0.6, h * 0.72), (w * 0.01, 0.0)),     # enters left
    )


def _glyph(index: int, side: int) -> Image.Image:
    g = toy_world.glyph(index)
    scale = side / max(g.size)
    return g.resize((max(1, int(g.width * scale)), max(1, int(g.height * scale))), Image.LANCZOS)


def render_sequence(script: tuple[Motion, ...] | None = None, size: tuple[int, int] = (480, 640), frames: int = 90,
                    rate_hz: float = 10.0, seed: int = 0, noise: float = 6.0,
                    min_visible: float = 0.3) -> list[SequenceFrame]:
    """The frames of `script` (default_script) over one background drawn from `seed`. `noise` is
    the standard deviation of Gaussian sensor noise added per frame (grey levels), so no two frames
    are alike; objects with less than `min_visible` of their pixels in view are not listed."""
    script = default_script(size, frames) if script is None else script
    h, w = size
    rng = np.random.default_rng(np.random.SeedSequence([SEQUENCE_STREAM, seed]))
    background = toy_world._background(rng, w, h)
    draw = ImageDraw.Draw(background)
    for _ in range(2):
        _distractor(draw, rng, h, w)
    glyphs = {m.index: _glyph(m.index, m.side) for m in script}
    out = []
    for f in range(frames):
        img = background.copy()
        owner = np.full((h, w), -1, np.int32)        # which script entry owns each pixel (drawn last wins)
        placed = []
        for k, m in enumerate(script):
            pos = m.position(f)
            if pos is None:
                continue
            g = glyphs[m.index]
            x, y = int(round(pos[0])), int(round(pos[1]))
            img.paste(g, (x, y), g)
            alpha = np.asarray(g)[..., 3] > 127
            ys, xs = np.nonzero(alpha)
            ys, xs = ys + y, xs + x
            inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
            owner[ys[inside], xs[inside]] = k
            placed.append((k, m, int(alpha.sum())))
        seen = []
        for k, m, total in placed:
            ys, xs = np.nonzero(owner == k)
            if not len(xs) or len(xs) < min_visible * total:
                continue
            seen.append(SeenObject(m.identity, toy_world.NOUNS[m.index],
                                   (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                                   len(xs) / total))
        pixels = np.asarray(img, np.float32)
        if noise > 0:
            pixels = pixels + rng.normal(0.0, noise, pixels.shape)
        out.append(SequenceFrame(np.clip(pixels, 0, 255).astype(np.uint8), f / rate_hz, tuple(seen)))
    return out
