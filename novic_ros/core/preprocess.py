"""Frames (HxWx3 uint8 RGB arrays) to CLIP input arrays, with numpy and Pillow (no torch).

Reproduces open_clip's eval transform (resize, center crop or pad, to-tensor, normalise) for the
model's own `preprocess_cfg`: the resize is Pillow's, with the filter open_clip's transform uses on
PIL images, so the pixels are the same; normalisation runs the same float32 operations in the
same order as torchvision's ToTensor and Normalize.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import FrameError

RESIZE_MODES = ('shortest', 'squash', 'longest')
INTERPOLATIONS = ('bicubic', 'bilinear', 'nearest')
_PIL_FILTERS = {'bicubic': Image.Resampling.BICUBIC, 'bilinear': Image.Resampling.BILINEAR,
                'nearest': Image.Resampling.NEAREST}


@dataclass(frozen=True)
class PreprocessConfig:
    """The parts of open_clip's PreprocessCfg that define the eval transform."""
    size: tuple[int, int]                   # target (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = 'bicubic'
    resize_mode: str = 'shortest'
    fill_color: int = 0

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode {self.resize_mode!r} is not one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {INTERPOLATIONS}")
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"size must be a positive (height, width), got {self.size}")

    @classmethod
    def from_open_clip(cls, cfg: dict) -> 'PreprocessConfig':
        """From the dict open_clip stores on a model (`model.visual.preprocess_cfg`)."""
        size = cfg['size']
        size = (size, size) if isinstance(size, int) else tuple(size)
        return cls(size=tuple(int(s) for s in size), mean=tuple(cfg['mean']), std=tuple(cfg['std']),
                   interpolation=cfg.get('interpolation', 'bicubic'),
                   resize_mode=cfg.get('resize_mode', 'shortest'), fill_color=int(cfg.get('fill_color', 0)))


@dataclass(frozen=True)
class _Geometry:
    resize: tuple[int, int]       # (h, w) after resizing
    top: int                      # crop offsets into the resized image (negative = pad)
    left: int


def _geometry(h: int, w: int, cfg: PreprocessConfig) -> _Geometry:
    """The resize and crop/pad that open_clip's transform would apply to an h x w image."""
    th, tw = cfg.size
    if cfg.resize_mode == 'squash':
        return _Geometry((th, tw), 0, 0)
    if cfg.resize_mode == 'shortest' and th == tw:
        # torchvision Resize(int): the short side becomes `size`, the long side is truncated.
        rh, rw = (th, int(th * w / h)) if h <= w else (int(tw * h / w), tw)
    else:
        # open_clip ResizeKeepRatio: one ratio for both sides, rounded.
        rh_, rw_ = h / th, w / tw
        ratio = max(rh_, rw_) if cfg.resize_mode == 'longest' else min(rh_, rw_)
        rh, rw = max(1, round(h / ratio)), max(1, round(w / ratio))
    if cfg.resize_mode == 'longest':
        # CenterCropOrPad pads by floor((target - size) / 2) on the top/left.
        return _Geometry((rh, rw), -((th - rh) // 2) if rh < th else int(round((rh - th) / 2.0)),
                         -((tw - rw) // 2) if rw < tw else int(round((rw - tw) / 2.0)))
    return _Geometry((rh, rw), int(round((rh - th) / 2.0)), int(round((rw - tw) / 2.0)))


def validate_frame(frame, index: int | None = None) -> np.ndarray:
    """Check that `frame` is an HxWx3 uint8 array, returning it; raise FrameError naming the problem."""
    where = '' if index is None else f" (frame {index})"
    if not isinstance(frame, np.ndarray) and hasattr(frame, '__array__') and hasattr(frame, 'shape'):
        frame = np.asarray(frame)           # a tensor from torch code
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"expected an HxWx3 uint8 numpy array{where}, got {type(frame).__name__}; "
                         "decode images to RGB arrays first (for example numpy.asarray(PIL.Image.open(p).convert('RGB')))")
    if frame.dtype != np.uint8:
        raise FrameError(f"expected dtype uint8{where}, got {frame.dtype}; scale to 0..255 and cast with .astype(np.uint8)")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(f"expected shape HxWx3 (RGB){where}, got {frame.shape}; "
                         "convert grey or RGBA images to RGB first")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"empty frame{where}: shape {frame.shape}")
    return frame


class Preprocessor:
    """Callable: a frame or a sequence of frames (any sizes) -> normalised float32 array B x 3 x H x W."""

    def __init__(self, cfg: PreprocessConfig):
        self.cfg = cfg
        self._mean = np.asarray(cfg.mean, np.float32).reshape(3, 1, 1)
        self._std = np.asarray(cfg.std, np.float32).reshape(3, 1, 1)
        self._filter = _PIL_FILTERS[cfg.interpolation]

    def __call__(self, frames) -> np.ndarray:
        if isinstance(frames, np.ndarray) or (hasattr(frames, 'ndim') and hasattr(frames, 'shape')):
            if frames.ndim == 3:
                frames = [frames]
            elif frames.ndim == 4:
                frames = list(frames)           # a B x H x W x 3 batch
            else:
                raise FrameError(f"expected an HxWx3 frame or a BxHxWx3 batch, got shape {tuple(frames.shape)}")
        elif not isinstance(frames, (list, tuple)):
            raise FrameError(f"expected a frame or a list of frames, got {type(frames).__name__}")
        if len(frames) == 0:
            raise FrameError("no frames given")
        frames = [validate_frame(f, i) for i, f in enumerate(frames)]
        out = np.empty((len(frames), 3, *self.cfg.size), dtype=np.float32)
        for i, frame in enumerate(frames):
            self._transform(frame, out[i])
        return out

    def _transform(self, frame: np.ndarray, out: np.ndarray) -> None:
        h, w = frame.shape[:2]
        g = _geometry(h, w, self.cfg)
        if g.resize != (h, w):
            img = Image.fromarray(np.ascontiguousarray(frame), 'RGB').resize(g.resize[::-1], self._filter)
            frame = np.asarray(img)
        x = self._crop_or_pad(frame, g).transpose(2, 0, 1)                   # 3 x H x W uint8 view
        # ToTensor then Normalize, as torchvision computes them: x / 255, - mean, / std, in float32.
        np.divide(x, np.float32(255), out=out, dtype=np.float32)
        out -= self._mean
        out /= self._std

    def _crop_or_pad(self, x: np.ndarray, g: _Geometry) -> np.ndarray:
        th, tw = self.cfg.size
        if g.top >= 0 and g.left >= 0 and x.shape[0] >= th + g.top and x.shape[1] >= tw + g.left:
            return x[g.top:g.top + th, g.left:g.left + tw]
        canvas = np.full((th, tw, 3), self.cfg.fill_color, dtype=np.uint8)
        src_t, src_l = max(g.top, 0), max(g.left, 0)
        dst_t, dst_l = max(-g.top, 0), max(-g.left, 0)
        hh = min(x.shape[0] - src_t, th - dst_t)
        ww = min(x.shape[1] - src_l, tw - dst_l)
        canvas[dst_t:dst_t + hh, dst_l:dst_l + ww] = x[src_t:src_t + hh, src_l:src_l + ww]
        return canvas
