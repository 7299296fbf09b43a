"""Frames (HxWx3 uint8 RGB arrays) to CLIP input tensors, vectorised in torch.

Reproduces open_clip's eval transform (resize, center crop or pad, to-tensor, normalise)
for the model's own `preprocess_cfg`, without PIL. On the CPU the resize runs on uint8
with antialiased bicubic interpolation, which is PIL's filter, so the result matches the
PIL pipeline to a fraction of a grey level and is several times faster; frames of the same
size are resized as one batch.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
import numpy as np
import torch
import torch.nn.functional as F

from .errors import FrameError

RESIZE_MODES = ('shortest', 'squash', 'longest')
INTERPOLATIONS = ('bicubic', 'bilinear', 'nearest')


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
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
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


def _as_tensor(frame: np.ndarray) -> torch.Tensor:
    """A tensor sharing the frame's memory. Frames decoded by PIL or received from ROS are often
    read-only; we only ever read them, so torch's warning about that does not apply."""
    frame = np.ascontiguousarray(frame)
    if not frame.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            return torch.from_numpy(frame)
    return torch.from_numpy(frame)


class Preprocessor:
    """Callable: a frame or a sequence of frames -> normalised float32 array B x 3 x H x W."""

    def __init__(self, cfg: PreprocessConfig):
        self.cfg = cfg
        self.device = torch.device('cpu')
        mean = torch.tensor(cfg.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(cfg.std, device=self.device).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std)          # normalised = pixel * scale + bias
        self._bias = -mean / std
        # The uint8 kernels exist for antialiased bilinear/bicubic on the CPU; elsewhere resize in float.
        self._uint8_resize = self.device.type == 'cpu' and cfg.interpolation in ('bicubic', 'bilinear')

    def __call__(self, frames) -> np.ndarray:
        if isinstance(frames, (np.ndarray, torch.Tensor)):
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
        out = torch.empty((len(frames), 3, *self.cfg.size), device=self.device, dtype=torch.float32)
        for i, frame in enumerate(frames):
            # No stacking: each frame is resized straight from its own buffer (a copy of a batch of
            # 640x480 frames costs as much as resizing them).
            x = _as_tensor(frame).to(self.device, non_blocking=True).permute(2, 0, 1)[None]
            self._transform(x, *frame.shape[:2], out[i:i + 1])
        return out.numpy()

    def _transform(self, x: torch.Tensor, h: int, w: int, out: torch.Tensor) -> None:
        # x: 1 x 3 x h x w uint8 (channels-last view of the HxWx3 frame)
        g = _geometry(h, w, self.cfg)
        x = self._resize(x, g.resize) if g.resize != (h, w) else x
        x = self._crop_or_pad(x, g)
        # (x / 255 - mean) / std in one pass from the cropped view into the contiguous output.
        torch.addcmul(self._bias, x, self._scale, out=out)

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        mode = self.cfg.interpolation
        kw = {} if mode == 'nearest' else {'antialias': True, 'align_corners': False}
        if self._uint8_resize:
            return F.interpolate(x, size=size, mode=mode, **kw)      # uint8 in, uint8 out, like PIL
        # PIL rounds and clamps to 0..255 after resizing; do the same so both paths agree.
        return F.interpolate(x.float(), size=size, mode=mode, **kw).clamp_(0, 255).round_()

    def _crop_or_pad(self, x: torch.Tensor, g: _Geometry) -> torch.Tensor:
        th, tw = self.cfg.size
        if g.top >= 0 and g.left >= 0 and x.shape[-2] >= th + g.top and x.shape[-1] >= tw + g.left:
            return x[..., g.top:g.top + th, g.left:g.left + tw]
        canvas = torch.full((x.shape[0], 3, th, tw), self.cfg.fill_color, device=x.device, dtype=x.dtype)
        src_t, src_l = max(g.top, 0), max(g.left, 0)
        dst_t, dst_l = max(-g.top, 0), max(-g.left, 0)
        hh = min(x.shape[-2] - src_t, th - dst_t)
        ww = min(x.shape[-1] - src_l, tw - dst_l)
        canvas[..., dst_t:dst_t + hh, dst_l:dst_l + ww] = x[..., src_t:src_t + hh, src_l:src_l + ww]
        return canvas
