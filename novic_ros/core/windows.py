"""Windows of a frame for the multi-object mode: where to look (a grid, or squares around
proposed boxes) and the pixels the CLIP encoder gets for each, normalised as Preprocessor does.

Every window is cut and resized straight to the encoder's input size with Pillow and the model's
own filter. Large windows are cut from a copy of the frame halved (or quartered...) first, so a
window costs about the same whatever its size: from a 640x480 frame, a 480 px window through the
full-size image costs 2 ms, through the halved one 0.3 ms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .preprocess import InputNormalizer, PreprocessConfig, validate_frame

# A window is cut from the smallest pyramid level on which it still spans this many encoder inputs.
MIN_OVERSAMPLING = 1.0


@dataclass(frozen=True)
class GridConfig:
    scales: tuple[float, ...] = (0.7, 0.45, 0.3)    # window side / frame short side, each in (0, 1]
    overlap: float = 0.5                            # fraction of a side shared by neighbours, [0, 0.9]
    max_windows: int = 64                           # most windows per scale (thin frames: spread out)

    def __post_init__(self):
        object.__setattr__(self, 'scales', tuple(sorted({float(s) for s in self.scales}, reverse=True)))
        if not self.scales or not all(0.0 < s <= 1.0 for s in self.scales):
            raise ValueError(f"grid scales {self.scales} must be fractions of the short side in (0, 1]")
        if not 0.0 <= self.overlap <= 0.9:
            raise ValueError(f"grid overlap {self.overlap} must be in [0, 0.9]")
        if self.max_windows < 1:
            raise ValueError(f"grid max_windows must be >= 1, got {self.max_windows}")


def _starts(length: float, window: float, overlap: float, most: int) -> np.ndarray:
    """Offsets of windows covering [0, length), neighbours sharing at least `overlap` of a window
    (fewer, leaving gaps, when that would take more than `most`)."""
    if window >= length:
        return np.array([0.0])
    count = min(most, int(math.ceil((length - window) / (window * (1.0 - overlap)) - 1e-9)) + 1)
    return np.linspace(0.0, length - window, max(count, 2))


def grid_boxes(h: int, w: int, grid: GridConfig) -> np.ndarray:
    """N x 4 float square windows [x0, y0, x1, y1] of every scale, coarse to fine."""
    out = []
    for s in grid.scales:
        side = s * min(h, w)
        ys = _starts(h, side, grid.overlap, grid.max_windows)
        xs = _starts(w, side, grid.overlap, max(1, grid.max_windows // len(ys)))
        out.extend((x, y, x + side, y + side) for y in ys for x in xs)
    return np.asarray(out, np.float64).reshape(-1, 4)


def square_windows(boxes: np.ndarray, margin: float, h: int, w: int) -> np.ndarray:
    """Square windows centred on `boxes` (N x 4), side = margin x the box's longer side, moved inside
    the frame (and no larger than its short side)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    side = np.minimum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * margin, min(h, w))
    side = np.maximum(side, 1.0)
    x0 = np.clip((boxes[:, 0] + boxes[:, 2] - side) / 2, 0, w - side)
    y0 = np.clip((boxes[:, 1] + boxes[:, 3] - side) / 2, 0, h - side)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


class WindowCropper:
    """Callable: (HxWx3 uint8 frame, N x 4 windows in frame pixels) -> N x 3 x H x W float32 encoder
    input, normalised as Preprocessor does (the same InputNormalizer)."""

    def __init__(self, cfg: PreprocessConfig):
        self.cfg = cfg
        self._normalize = InputNormalizer(cfg)

    def __call__(self, frame: np.ndarray, windows: np.ndarray) -> np.ndarray:
        frame = validate_frame(frame)
        windows = np.asarray(windows, np.float64).reshape(-1, 4)
        th, tw = self.cfg.size
        out = np.empty((len(windows), 3, th, tw), np.float32)
        pyramid = [Image.fromarray(np.ascontiguousarray(frame), 'RGB')]
        for i, (x0, y0, x1, y1) in enumerate(windows):
            level = 0
            while min((x1 - x0) / tw, (y1 - y0) / th) / 2 ** (level + 1) >= MIN_OVERSAMPLING:
                level += 1
                if level == len(pyramid):
                    pyramid.append(pyramid[-1].reduce(2))
            f = 2 ** level
            crop = pyramid[level].resize((tw, th), self._normalize.filter, box=(x0 / f, y0 / f, x1 / f, y1 / f))
            self._normalize(np.asarray(crop), out[i])
        return out
