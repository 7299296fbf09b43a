"""Multi-object scenes of the toy world, with ground truth: 2 to 4 pictograms of distinct nouns at
varied sizes and positions, plus distractors (shapes and strokes that are no noun), each object
with its pixel box.

They are what the multi-object mode (novic_ros.core.object_finder) is measured on. The toy CLIP and its
decoder were trained on single pictograms filling most of a 64 px picture (toy_world.render); a
scene is a different composition, and its random stream is seeded apart from every training
stream (SCENE_STREAM), so no scene was ever seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import toy_world

# Mixed into every scene seed: numpy's SeedSequence([SCENE_STREAM, seed]) never equals the plain
# default_rng(seed) streams that toy CLIP training and toy_world.render_set draw from.
SCENE_STREAM = 0x5CE7E


@dataclass(frozen=True)
class SceneObject:
    label: str
    index: int                                  # into toy_world.OBJECTS
    box: tuple[int, int, int, int]              # x0, y0, x1, y1 in pixels (x1, y1 exclusive): the opaque pixels


@dataclass(frozen=True)
class ToyScene:
    image: np.ndarray                           # H x W x 3 uint8 RGB
    objects: tuple[SceneObject, ...]

    @property
    def nouns(self) -> tuple[str, ...]:
        return tuple(o.label for o in self.objects)


@dataclass(frozen=True)
class SceneConfig:
    size: tuple[int, int] = (480, 640)          # (height, width)
    objects: tuple[int, int] = (2, 4)           # inclusive range of objects per scene
    scale: tuple[float, float] = (0.18, 0.45)   # object side as a fraction of the short side
    distractors: tuple[int, int] = (1, 4)       # inclusive range of clutter shapes
    max_rotation: float = 30.0
    max_overlap: float = 0.05                   # most area of one object box another may cover

    def __post_init__(self):
        if not (1 <= self.objects[0] <= self.objects[1] <= len(toy_world.OBJECTS)):
            raise ValueError(f"objects range {self.objects} must be within [1, {len(toy_world.OBJECTS)}]")
        if not (0 < self.scale[0] <= self.scale[1] <= 1):
            raise ValueError(f"scale range {self.scale} must be within (0, 1]")
        if min(self.size) < 16:
            raise ValueError(f"scene size {self.size} is too small (16 px at least)")


def _glyph(index: int, side: int, rng: np.random.Generator, max_rotation: float) -> Image.Image:
    g = toy_world.glyph(index)
    g = g.resize((max(1, int(side * g.width / max(g.size))), max(1, int(side * g.height / max(g.size)))),
                 Image.LANCZOS)
    g = g.rotate(float(rng.uniform(-max_rotation, max_rotation)), resample=Image.BICUBIC, expand=True)
    g = g.crop(g.getbbox() or (0, 0, g.width, g.height))
    return g.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else g


def _covered(a, b) -> float:
    """Fraction of box a's area that box b covers."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return 0.0 if w <= 0 or h <= 0 else w * h / ((a[2] - a[0]) * (a[3] - a[1]))


def _distractor(draw: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int) -> None:
    """Clutter that names nothing: a filled or outlined shape, a thick line or a scribble."""
    side = int(min(h, w) * rng.uniform(0.08, 0.35))
    x, y = int(rng.integers(0, max(1, w - side))), int(rng.integers(0, max(1, h - side)))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    box = (x, y, x + side, y + int(side * rng.uniform(0.4, 1.0)))
    kind = rng.integers(5)
    width = max(1, int(side * rng.uniform(0.03, 0.12)))
    if kind == 0:
        draw.ellipse(box, fill=colour if rng.random() < 0.6 else None, outline=colour, width=width)
    elif kind == 1:
        draw.rectangle(box, fill=colour if rng.random() < 0.6 else None, outline=colour, width=width)
    elif kind == 2:
        pts = [(x + int(rng.integers(0, side)), y + int(rng.integers(0, side))) for _ in range(int(rng.integers(3, 7)))]
        draw.polygon(pts, fill=colour)
    elif kind == 3:
        draw.line([(x, y), (x + side, y + int(rng.integers(-side, side)))], fill=colour, width=width)
    else:
        pts = [(x + int(rng.integers(0, side)), y + int(rng.integers(0, side))) for _ in range(int(rng.integers(4, 9)))]
        draw.line(pts, fill=colour, width=width, joint='curve')


def render_scene(rng: np.random.Generator, cfg: SceneConfig = SceneConfig(),
                 classes: list[int] | None = None) -> ToyScene:
    """One scene: background, distractors, then objects of distinct nouns placed with little overlap
    (an object that finds no free place in 50 tries is left out, so a scene may hold fewer than drawn)."""
    h, w = cfg.size
    img = toy_world._background(rng, w, h)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))):
        _distractor(draw, rng, h, w)
    pool = list(range(len(toy_world.OBJECTS))) if classes is None else list(classes)
    count = min(len(pool), int(rng.integers(cfg.objects[0], cfg.objects[1] + 1)))
    chosen = rng.choice(len(pool), size=count, replace=False)
    placed: list[SceneObject] = []
    for c in chosen:
        index = pool[int(c)]
        g = _glyph(index, max(8, int(min(h, w) * rng.uniform(*cfg.scale))), rng, cfg.max_rotation)
        if g.width > w or g.height > h:
            continue
        for _ in range(50):
            x, y = int(rng.integers(0, w - g.width + 1)), int(rng.integers(0, h - g.height + 1))
            box = (x, y, x + g.width, y + g.height)
            if all(_covered(box, o.box) <= cfg.max_overlap and _covered(o.box, box) <= cfg.max_overlap for o in placed):
                img.paste(g, (x, y), g)
                placed.append(SceneObject(toy_world.NOUNS[index], index, box))
                break
    return ToyScene(np.asarray(img, dtype=np.uint8).copy(), tuple(placed))


def render_scenes(
    n: int, seed: int, cfg: SceneConfig = SceneConfig(), classes: list[int] | None = None
) -> list[ToyScene]:
    """`n` reproducible scenes from `seed` (a stream apart from training's, see SCENE_STREAM)."""
    rng = np.random.default_rng(np.random.SeedSequence([SCENE_STREAM, seed]))
    return [render_scene(rng, cfg, classes) for _ in range(n)]
