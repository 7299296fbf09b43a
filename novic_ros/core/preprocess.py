"""Frames (HxWx3 uint8 RGB arrays) to CLIP input arrays, with numpy and Pillow (no torch).

Reproduces open_clip's eval transform (resize, center crop or pad, to-tensor, normalise) for the
model's own `preprocess_cfg`: the resize is Pillow's, with the filter open_clip's transform uses on
PIL images, so the pixels are the same; normalisation runs the same float32 operations in the
same order as torchvision's ToTensor and Normalize.

A frame of extreme aspect ratio would become a huge image when its short side is resized to
the model's input (a 1x40000 frame: 224 x 8,960,000 pixels, gigabytes) only to be cropped to
224x224. Such frames are cropped in source coordinates first: the part of the frame that
survives the crop (`visible_window`) is resampled straight to its output size with Pillow's
resize-with-box, which computes what resizing the whole frame and cropping would, reading only
the source pixels the filter touches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import FrameError

RESIZE_MODES = ('shortest', 'squash', 'longest')
INTERPOLATIONS = ('bicubic', 'bilinear', 'nearest')
_PIL_FILTERS = {'bicubic': Image.Resampling.BICUBIC, 'bilinear': Image.Resampling.BILINEAR,
                'nearest': Image.Resampling.NEAREST}
_FILTER_SUPPORT = {'bicubic': 2.0, 'bilinear': 1.0, 'nearest': 0.5}    # Pillow's, in output pixels
# A frame whose resized copy would hold more than this many times the model input's pixels is
# cropped in source coordinates first. Camera aspect ratios (up to 21:9, resized area <= 2.4x)
# keep open_clip's order, and its pixels to the bit.
CROP_FIRST_FACTOR = 4


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


@dataclass(frozen=True)
class Window:
    """The part of the resized frame that survives the crop, seen from both sides."""
    box: tuple[float, float, float, float]   # (x0, y0, x1, y1) in source pixels, Pillow's box convention
    size: tuple[int, int]                    # (h, w) of that part after resizing
    dst: tuple[int, int]                     # (top, left) where it lands in the model input (> 0: padding)


def visible_window(h: int, w: int, g: _Geometry, cfg: PreprocessConfig) -> Window:
    """Where the output of resize-then-crop-or-pad comes from in the h x w source frame. Resizing
    only `box` to `size` gives the pixels of resizing the frame to g.resize and cropping."""
    th, tw = cfg.size
    rh, rw = g.resize
    y0, y1 = max(g.top, 0), min(g.top + th, rh)       # rows and columns of the resized frame kept
    x0, x1 = max(g.left, 0), min(g.left + tw, rw)
    sy, sx = h / rh, w / rw                           # source pixels per resized pixel
    return Window((x0 * sx, y0 * sy, x1 * sx, y1 * sy), (y1 - y0, x1 - x0), (max(-g.top, 0), max(-g.left, 0)))


def crops_first(g: _Geometry, cfg: PreprocessConfig) -> bool:
    """Whether resizing the whole frame would cost far more than the model input it feeds."""
    return g.resize[0] * g.resize[1] > CROP_FIRST_FACTOR * cfg.size[0] * cfg.size[1]


def _source_span(lo: float, hi: float, out: int, limit: int, support: float) -> tuple[int, int]:
    """The integer source range a resampling filter reads for output [0, out) of [lo, hi): the box
    widened by the filter's reach (scaled when downsampling, as Pillow does) and one pixel of rounding."""
    reach = support * max(1.0, (hi - lo) / max(out, 1)) + 1
    return max(0, math.floor(lo - reach)), min(limit, math.ceil(hi + reach))


def resize_window(frame: np.ndarray, win: Window, interpolation: str) -> np.ndarray:
    """The window's pixels, (h, w, 3) uint8: Pillow resamples only the tile of the frame its filter
    reads, so the cost follows the output size, not the frame's. Equal to resizing the whole frame
    and cropping, up to float rounding where a filter tap lands exactly on a pixel edge."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = win.box
    oh, ow = win.size
    sup = _FILTER_SUPPORT[interpolation]
    ty0, ty1 = _source_span(y0, y1, oh, h, sup)
    tx0, tx1 = _source_span(x0, x1, ow, w, sup)
    tile = Image.fromarray(np.ascontiguousarray(frame[ty0:ty1, tx0:tx1]), 'RGB')
    out = tile.resize((ow, oh), _PIL_FILTERS[interpolation], box=(x0 - tx0, y0 - ty0, x1 - tx0, y1 - ty0))
    return np.asarray(out)


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


class InputNormalizer:
    """The model's resampling filter and its normalisation, set up once for everything that makes
    encoder input (Preprocessor for whole frames, windows.WindowCropper for the object windows)."""

    def __init__(self, cfg: PreprocessConfig):
        self.filter = _PIL_FILTERS[cfg.interpolation]
        self._mean = np.asarray(cfg.mean, np.float32).reshape(3, 1, 1)
        self._std = np.asarray(cfg.std, np.float32).reshape(3, 1, 1)

    def __call__(self, pixels: np.ndarray, out: np.ndarray) -> None:
        """H x W x 3 uint8 pixels -> `out` (3 x H x W float32): ToTensor then Normalize, as torchvision
        computes them (x / 255, - mean, / std, in float32), so the result matches open_clip's to the bit."""
        np.divide(pixels.transpose(2, 0, 1), np.float32(255), out=out, dtype=np.float32)
        out -= self._mean
        out /= self._std


class Preprocessor:
    """Callable: a frame or a sequence of frames (any sizes) -> normalised float32 array B x 3 x H x W."""

    def __init__(self, cfg: PreprocessConfig):
        self.cfg = cfg
        self._normalize = InputNormalizer(cfg)
        self._filter = self._normalize.filter

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
        g = _geometry(*frame.shape[:2], self.cfg)
        x = self._crop_then_resize(frame, g) if crops_first(g, self.cfg) else self._resize_then_crop(frame, g)
        self._normalize(x, out)

    def _resize_then_crop(self, frame: np.ndarray, g: _Geometry) -> np.ndarray:
        """open_clip's order: th x tw x 3 uint8 (a view where no padding is needed)."""
        if g.resize != frame.shape[:2]:
            img = Image.fromarray(np.ascontiguousarray(frame), 'RGB').resize(g.resize[::-1], self._filter)
            frame = np.asarray(img)
        return self._crop_or_pad(frame, g)

    def _crop_then_resize(self, frame: np.ndarray, g: _Geometry) -> np.ndarray:
        """The same pixels for frames of extreme aspect ratio, without their huge resized copy."""
        th, tw = self.cfg.size
        win = visible_window(*frame.shape[:2], g, self.cfg)
        canvas = np.full((th, tw, 3), self.cfg.fill_color, np.uint8)
        (top, left), (h, w) = win.dst, win.size
        canvas[top:top + h, left:left + w] = resize_window(frame, win, self.cfg.interpolation)
        return canvas

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
