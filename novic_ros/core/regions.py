"""Regions of a frame for the multi-object mode: square-ish windows at several scales, cut from an
image pyramid and normalised for the CLIP encoder in one batch.

A scale is the window's height as a fraction of the frame's short side; neighbouring windows of one
scale share `overlap` of their side. Each scale is one resize of the frame (from the previous,
finer level of the pyramid, which is cheaper than resizing the full frame again) to the size at
which a window is exactly the encoder's input, followed by slicing: no window is resized on its own.

Cost is bounded whatever the frame: at most `max_windows` windows per scale (when a long thin frame
would need more, they are spread evenly and leave gaps), and the largest pyramid level is never
more than `1 / min(scales)` times the encoder's input on its short side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .preprocess import PreprocessConfig, _as_tensor, validate_frame


@dataclass(frozen=True)
class RegionGrid:
    scales: tuple[float, ...]          # window height / frame short side, each in (0, 1]
    overlap: float = 0.5               # fraction of a window's side shared with its neighbour, [0, 0.9]
    max_windows: int = 64              # most windows per scale

    def __post_init__(self):
        object.__setattr__(self, 'scales', tuple(sorted({float(s) for s in self.scales})))
        if not self.scales or not all(0.0 < s <= 1.0 for s in self.scales):
            raise ValueError(f"region scales {self.scales} must be fractions of the short side in (0, 1]")
        if not 0.0 <= self.overlap <= 0.9:
            raise ValueError(f"region overlap {self.overlap} must be in [0, 0.9]")
        if self.max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {self.max_windows}")


def _positions(length: float, window: float, overlap: float, most: int) -> np.ndarray:
    """Start offsets of windows covering [0, length): evenly spread, neighbours overlapping by at
    least `overlap` of the window (fewer, with gaps, when that would take more than `most`)."""
    if window >= length:
        return np.array([(length - window) / 2.0])        # one window, centred (it may stick out)
    stride = window * (1.0 - overlap)
    count = min(most, int(math.ceil((length - window) / stride - 1e-9)) + 1)
    return np.linspace(0.0, length - window, max(count, 1))


@dataclass(frozen=True)
class _Level:
    size: tuple[int, int]              # resized (height, width)
    factor: float                      # resized pixels per frame pixel
    tops: np.ndarray                   # window offsets in resized pixels
    lefts: np.ndarray


class RegionCropper:
    """Callable: an HxWx3 uint8 RGB frame -> (N x 3 x h x w normalised pixels, N x 4 float boxes
    [x0, y0, x1, y1] in frame pixels, clipped to the frame), h x w being the encoder's input size."""

    def __init__(self, cfg: PreprocessConfig, grid: RegionGrid, device: torch.device | str = 'cpu',
                 dtype: torch.dtype = torch.float32):
        self.cfg, self.grid = cfg, grid
        self.device, self.dtype = torch.device(device), dtype
        mean = torch.tensor(cfg.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(cfg.std, device=self.device).view(1, 3, 1, 1)
        self._scale, self._bias = 1.0 / (255.0 * std), -mean / std
        self._uint8 = self.device.type == 'cpu' and cfg.interpolation in ('bicubic', 'bilinear')

    def _levels(self, h: int, w: int) -> list[_Level]:
        th, tw = self.cfg.size
        levels = []
        for s in self.grid.scales:                            # finest first: each level resizes the previous one
            win_h = s * min(h, w)                              # window in frame pixels
            win_w = win_h * tw / th
            f = th / win_h
            size = (max(th, round(h * f)), max(tw, round(w * f)))
            tops = np.clip(np.round(_positions(h, win_h, self.grid.overlap, self.grid.max_windows) * f), 0, size[0] - th)
            lefts = np.clip(np.round(_positions(w, win_w, self.grid.overlap, self.grid.max_windows) * f), 0, size[1] - tw)
            if len(tops) * len(lefts) > self.grid.max_windows:  # thin frames: fewer along the long side
                if len(tops) > len(lefts):
                    tops = tops[np.round(np.linspace(0, len(tops) - 1, max(1, self.grid.max_windows // len(lefts)))).astype(int)]
                else:
                    lefts = lefts[np.round(np.linspace(0, len(lefts) - 1, max(1, self.grid.max_windows // len(tops)))).astype(int)]
            levels.append(_Level(size, f, tops.astype(int), lefts.astype(int)))
        return levels

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == size:
            return x
        mode = self.cfg.interpolation
        kw = {} if mode == 'nearest' else {'antialias': True, 'align_corners': False}
        if self._uint8:
            return F.interpolate(x, size=size, mode=mode, **kw)
        return F.interpolate(x.float(), size=size, mode=mode, **kw).clamp_(0, 255).round_()

    def __call__(self, frame: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        frame = validate_frame(frame)
        h, w = frame.shape[:2]
        th, tw = self.cfg.size
        x = _as_tensor(frame).to(self.device).permute(2, 0, 1)[None]
        windows, boxes = [], []
        for level in self._levels(h, w):
            x = self._resize(x, level.size)
            for top in level.tops:
                for left in level.lefts:
                    windows.append(x[0, :, top:top + th, left:left + tw])
                    boxes.append((left / level.factor, top / level.factor,
                                  (left + tw) / level.factor, (top + th) / level.factor))
        # Float first: addcmul straight from uint8 takes a slow type-promoting path (7x here).
        pixels = torch.stack(windows).float().mul_(self._scale).add_(self._bias)
        boxes = np.clip(np.asarray(boxes, dtype=np.float64), 0, [w, h, w, h])
        return (pixels if self.dtype == torch.float32 else pixels.to(self.dtype)), boxes
