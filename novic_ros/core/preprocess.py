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

Two methods. `exact` runs Pillow's resize (integer arithmetic, scalar C: 2.5-2.9 ms for a 640x480
frame on a Xeon) and is open_clip's transform to the bit. `fast`, the default, computes the same
filter (Pillow's coefficients for the visible window, in float32) as two banded matrix products
with the normalisation folded into the last pass (`BandedResampler`: 0.7 ms on a quiet Zen 4); it skips
Pillow's rounding to 8 bits between and after the passes (values within 1 of 255 levels, a quarter
level on average) and clips to 0..255 after rows then columns, where Pillow clips after columns
then rows: where bicubic's negative lobes overshoot at a hard edge, a fraction of a percent of
values differ by up to FAST_TOLERANCE_LEVELS (measured: 8.4 on the test photographs). Labels do not
change (README "Preprocessing candidates"). Nearest-neighbour configs always run `exact`.
"""
from __future__ import annotations

import math
import threading
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
METHODS = ('fast', 'exact')
# Largest difference of the fast method from open_clip's pixels, in 8-bit levels, at bicubic overshoots
# (test_preprocess measures it on photographs, renders and odd sizes: at most 8.4; elsewhere <= 1).
FAST_TOLERANCE_LEVELS = 10
FAST_OVERSHOOT_SHARE = 0.01   # the share of values allowed beyond 1.5 levels (measured: at most 0.5%)
_BLOCK_ROWS = 8               # output rows per matrix product: fewer source rows read per output row
_RESAMPLER_CACHE = 8          # frame sizes whose weights a Preprocessor keeps
# Scratch floats a thread keeps between frames for the fast passes (a 1920x1080 frame needs 4.5 M);
# a larger frame's passes allocate their own.
SCRATCH_MAX_FLOATS = 8 << 20


class _Scratch(threading.local):
    """Per thread: one float32 buffer the fast passes reuse. Fresh arrays every frame cost more than
    the arithmetic: the window's float copy and the passes' outputs (6 MB for 640x480) are above
    glibc's mmap threshold, and each frame's page faults took 3.5 ms against 0.7 ms reused (2-core
    Zen 4 VM, README "Preprocessing candidates")."""

    def __init__(self):
        self.buf = np.empty(0, np.float32)

    def arrays(self, *shapes: tuple[int, ...]) -> list[np.ndarray]:
        sizes = [math.prod(s) for s in shapes]
        total = sum(sizes)
        if total > SCRATCH_MAX_FLOATS:
            return [np.empty(s, np.float32) for s in shapes]
        if self.buf.size < total:
            self.buf = np.empty(total, np.float32)
        out, at = [], 0
        for shape, n in zip(shapes, sizes):
            out.append(self.buf[at:at + n].reshape(shape))
            at += n
        return out


_SCRATCH = _Scratch()


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


def _bicubic(x: np.ndarray) -> np.ndarray:
    a, x = -0.5, np.abs(x)                   # Pillow's bicubic (a = -0.5)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _bilinear(x: np.ndarray) -> np.ndarray:
    return np.maximum(1 - np.abs(x), 0.0)


_FILTERS = {'bicubic': _bicubic, 'bilinear': _bilinear}


def resample_weights(lo: float, hi: float, in_size: int, out_size: int, interpolation: str) -> tuple[np.ndarray, int]:
    """The weights Pillow's precompute_coeffs gives source span [lo, hi) resampled to out_size
    (antialiased: the filter widened by the scale when shrinking), as an out_size x n float64 matrix
    over source pixels [first, first + n), the only ones the filter reaches; and `first`."""
    scale = (hi - lo) / out_size
    fscale = max(scale, 1.0)
    support = _FILTER_SUPPORT[interpolation] * fscale
    first, stop = _source_span(lo, hi, out_size, in_size, _FILTER_SUPPORT[interpolation])
    center = lo + (np.arange(out_size) + 0.5) * scale
    # Pillow's (int) casts truncate toward zero, then clamp to the frame.
    xmin = np.maximum(np.trunc(center - support + 0.5), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5), in_size)
    x = np.arange(first, stop)
    inside = (x >= xmin[:, None]) & (x < xmax[:, None])
    k = np.where(inside, _FILTERS[interpolation]((x - center[:, None] + 0.5) / fscale), 0.0)
    total = k.sum(axis=1, keepdims=True)
    return np.divide(k, total, out=k, where=total != 0), first


def _bands(weights: np.ndarray, rows: int) -> list[tuple[int, int, int, int, np.ndarray]]:
    """(r0, r1, c0, c1, weights[r0:r1, c0:c1]) for blocks of `rows` output rows and the source
    columns they read: the products skip the zeros outside each block's band."""
    out = []
    for r0 in range(0, weights.shape[0], rows):
        r1 = min(r0 + rows, weights.shape[0])
        used = np.flatnonzero(weights[r0:r1].any(axis=0))
        c0, c1 = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        out.append((r0, r1, c0, c1, np.ascontiguousarray(weights[r0:r1, c0:c1], np.float32)))
    return out


class BandedResampler:
    """One frame size's `fast` transform: the visible window resampled by Pillow's filter as two
    banded float32 matrix products (rows, then columns), normalised in the same pass that puts
    channels first. Pillow's uint8 rounding between passes is skipped (sub-level differences);
    values are clipped to 0..255 after each pass as Pillow does. The passes' arrays are the calling
    thread's scratch (_Scratch), so one resampler serves several threads at once."""

    def __init__(self, h: int, w: int, cfg: PreprocessConfig):
        g = _geometry(h, w, cfg)
        win = visible_window(h, w, g, cfg)
        x0, y0, x1, y1 = win.box
        self.oh, self.ow = win.size
        self.top, self.left = win.dst
        wy, fy = resample_weights(y0, y1, h, self.oh, cfg.interpolation)
        wx, fx = resample_weights(x0, x1, w, self.ow, cfg.interpolation)
        rows, cols = np.flatnonzero(wy.any(axis=0)), np.flatnonzero(wx.any(axis=0))
        wy, wx = wy[:, rows[0]:rows[-1] + 1], wx[:, cols[0]:cols[-1] + 1]
        self.rows = slice(fy + int(rows[0]), fy + int(rows[-1]) + 1)        # the source pixels read
        self.cols = slice(fx + int(cols[0]), fx + int(cols[-1]) + 1)
        self.wy, self.wx = _bands(wy, _BLOCK_ROWS), _bands(wx, _BLOCK_ROWS)
        self.src = (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)
        mean, std = np.asarray(cfg.mean, np.float64), np.asarray(cfg.std, np.float64)
        self.scale = (1 / (255 * std)).astype(np.float32).reshape(3, 1, 1)
        self.bias = (-mean / std).astype(np.float32).reshape(3, 1, 1)
        self.fill = ((cfg.fill_color / 255 - mean) / std).astype(np.float32).reshape(3, 1, 1)
        self.padded = (self.oh, self.ow) != tuple(cfg.size)

    def __call__(self, frame: np.ndarray, out: np.ndarray) -> None:
        """frame (h x w x 3 uint8) -> out (3 x H x W float32), normalised."""
        sh, sw = self.src
        x, y, yt, z = _SCRATCH.arrays((sh, sw * 3), (self.oh, sw * 3), (sw, 3 * self.oh), (self.ow, 3 * self.oh))
        np.copyto(x.reshape(sh, sw, 3), frame[self.rows, self.cols], casting='unsafe')
        for r0, r1, c0, c1, m in self.wy:                  # rows: channels stay interleaved
            np.matmul(m, x[c0:c1], out=y[r0:r1])
        np.clip(y, 0, 255, out=y)
        np.copyto(yt.reshape(sw, 3, self.oh), y.reshape(self.oh, sw, 3).transpose(1, 2, 0))
        for r0, r1, c0, c1, m in self.wx:                  # columns, on the transposed rows
            np.matmul(m, yt[c0:c1], out=z[r0:r1])
        np.clip(z, 0, 255, out=z)
        chw = z.reshape(self.ow, 3, self.oh).transpose(1, 2, 0)
        if self.padded:
            out[...] = self.fill
            out = out[:, self.top:self.top + self.oh, self.left:self.left + self.ow]
        np.multiply(chw, self.scale, out=out)
        out += self.bias


def validate_frame(frame, index: int | None = None) -> np.ndarray:
    """Check that `frame` is an HxWx3 uint8 array, returning it; raise FrameError naming the problem."""
    where = '' if index is None else f" (frame {index})"
    if not isinstance(frame, np.ndarray) and hasattr(frame, '__array__') and hasattr(frame, 'shape'):
        frame = np.asarray(frame)           # a tensor from torch code
    if not isinstance(frame, np.ndarray):
        raise FrameError(
            f"expected an HxWx3 uint8 numpy array{where}, got {type(frame).__name__}; "
            "decode images to RGB arrays first (for example numpy.asarray(PIL.Image.open(p).convert('RGB')))"
        )
    if frame.dtype != np.uint8:
        raise FrameError(
            f"expected dtype uint8{where}, got {frame.dtype}; scale to 0..255 and cast with .astype(np.uint8)"
        )
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
    """Callable: a frame or a sequence of frames (any sizes) -> normalised float32 array B x 3 x H x W.
    method 'fast' (default: BandedResampler, within FAST_TOLERANCE_LEVELS of open_clip) or 'exact'
    (Pillow: open_clip's pixels to the bit)."""

    def __init__(self, cfg: PreprocessConfig, method: str = 'fast'):
        if method not in METHODS:
            raise ValueError(f"preprocessing method {method!r} is not one of {METHODS}")
        self.cfg = cfg
        self.method = 'exact' if cfg.interpolation == 'nearest' else method
        self._normalize = InputNormalizer(cfg)
        self._filter = self._normalize.filter
        self._resamplers: dict[tuple[int, int], BandedResampler] = {}

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
        if self.method == 'fast':
            self._resampler(*frame.shape[:2])(frame, out)
            return
        g = _geometry(*frame.shape[:2], self.cfg)
        x = self._crop_then_resize(frame, g) if crops_first(g, self.cfg) else self._resize_then_crop(frame, g)
        self._normalize(x, out)

    def _resampler(self, h: int, w: int) -> BandedResampler:
        r = self._resamplers.get((h, w))
        if r is None:
            if len(self._resamplers) >= _RESAMPLER_CACHE:      # a stream of changing sizes: keep the newest
                self._resamplers.pop(next(iter(self._resamplers)))
            r = self._resamplers[(h, w)] = BandedResampler(h, w, self.cfg)
        return r

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
