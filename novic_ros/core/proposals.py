"""Where the objects of a frame probably are, before anything is named: class-agnostic box
proposals from two classic saliency maps, in numpy, on the frame shrunk to a few dozen pixels.

- Spectral residual (Hou and Zhang, CVPR 2007): in the log amplitude spectrum of each colour
  channel, whatever the local average predicts (the smooth statistics of backgrounds, and periodic
  texture such as stripes) is subtracted; the inverse transform of the residual, squared and
  blurred, is high where something stands out in structure.
- Frequency-tuned (Achanta et al., CVPR 2009): the distance in CIELAB of each (slightly blurred)
  pixel from the frame's mean colour: high where something stands out in colour.

Each map is thresholded at a few multiples of its mean; the bounding boxes of the blobs are the
proposals. Thresholds and resolutions give nested boxes, so an object split at one is whole at
another, and the two maps find different objects (on the toy scenes, 77% of the objects get a box
overlapping them by IoU >= 0.5 from the spectral residual alone, 87% from both).

It costs about a millisecond at 640x480, whatever the model, which is what lets the multi-object
mode name a frame with a dozen encoder windows instead of a dense grid of a hundred (see
README, "Several objects per frame", for the comparison).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class SaliencyConfig:
    # (map width in pixels, threshold as a multiple of the map's mean); 64 px is Hou and Zhang's width.
    spectral: tuple[tuple[int, float], ...] = ((64, 2.0), (96, 1.5), (96, 2.0), (96, 3.0))
    colour: tuple[tuple[int, float], ...] = ((96, 1.5), (96, 2.0), (96, 3.0))
    spectral_blur: float = 1.5          # Gaussian blur of the spectral-residual map, in map pixels
    colour_blur: float = 1.0            # Gaussian blur of the pixels before their colour distance
    min_area: float = 0.02              # smallest proposal, as a fraction of the short side squared
    max_overlap: float = 0.7            # a proposal overlapping an earlier one more (IoU) is the same
    max_proposals: int = 16             # most proposals per frame (bounded cost), in the order found

    def __post_init__(self):
        levels = self.spectral + self.colour
        if not levels or any(w < 8 or k <= 0 for w, k in levels):
            raise ValueError(f"saliency levels {levels} must be (width >= 8, threshold > 0) pairs")
        if self.max_proposals < 1 or not 0 < self.max_overlap <= 1 or self.min_area < 0:
            raise ValueError(f"invalid saliency config {self}")


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(round(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the first two axes, with edge replication."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    h, w = a.shape[:2]
    rest = [(0, 0)] * (a.ndim - 2)
    p = np.pad(a, [(r, r), (0, 0)] + rest, mode='edge')
    a = sum(wt * p[i:i + h] for i, wt in enumerate(k))
    p = np.pad(a, [(0, 0), (r, r)] + rest, mode='edge')
    return sum(wt * p[:, i:i + w] for i, wt in enumerate(k))


def _box3(a: np.ndarray) -> np.ndarray:
    """3x3 mean over the last two axes, with edge replication."""
    p = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)], mode='edge')
    h, w = a.shape[-2:]
    return sum(p[..., i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def _shrink(frame: np.ndarray, width: int) -> np.ndarray:
    """The frame as float32 RGB in [0, 1], `width` pixels across (area average)."""
    img = frame if isinstance(frame, Image.Image) else Image.fromarray(np.ascontiguousarray(frame), 'RGB')
    w, h = img.size
    return np.asarray(img.resize((width, max(8, round(width * h / w))), Image.Resampling.BOX), np.float32) / np.float32(
        255
    )


def saliency_map(frame, width: int, sigma: float = 1.5) -> np.ndarray:
    """Spectral-residual saliency of an HxWx3 uint8 frame (or PIL image, or an already shrunk float32
    image) at `width` pixels across."""
    small = frame if isinstance(frame, np.ndarray) and frame.dtype == np.float32 else _shrink(frame, width)
    small = np.ascontiguousarray(small.transpose(2, 0, 1))                    # 3 x h x w
    # The real transform: half the spectrum of a real image holds all of it (and is 10x faster here).
    spectrum = np.fft.rfft2(small)
    amp = np.abs(spectrum) + 1e-8
    log_amp = np.log(amp)
    residual = log_amp - _box3(log_amp)
    # exp(residual + i * phase) without computing the phase: the unit phasor is spectrum / |spectrum|.
    sal = np.fft.irfft2(spectrum * (np.exp(residual) / amp), s=small.shape[1:]) ** 2
    return _blur(sal.sum(axis=0), sigma).astype(np.float32)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every run of True in the mask, row by row: (row, start, end exclusive) arrays, row-major."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)                                    # h x (w + 1)
    rows, starts = np.nonzero(d == 1)
    _, ends = np.nonzero(d == -1)                                  # row-major: ends pair with starts
    return rows, starts, ends


def component_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1 exclusive) and areas of the 4-connected components of a boolean
    mask. Components are unions of runs: each run touches a contiguous range of the runs of the row
    above (found for all runs at once by binary search), and union-find joins them."""
    y, s, e = _runs(mask)
    if len(y) == 0:
        return []
    stride = mask.shape[1] + 2
    # Runs of row y-1 touching run (y, s, e): end > s and start < e. Keys order runs row-major.
    lo = np.searchsorted((y + 1) * stride + e, y * stride + s, side='right')
    hi = np.searchsorted(y * stride + s, (y - 1) * stride + e, side='left')
    count = np.maximum(hi - lo, 0)
    below = np.repeat(np.arange(len(y)), count)
    above = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())
    parent = list(range(len(y)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(above.tolist(), below.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    roots = np.asarray([find(i) for i in range(len(y))])
    ids, comp = np.unique(roots, return_inverse=True)
    n = len(ids)
    x0, y0 = np.full(n, mask.shape[1]), np.full(n, mask.shape[0])
    x1, y1, area = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
    np.minimum.at(x0, comp, s)
    np.minimum.at(y0, comp, y)
    np.maximum.at(x1, comp, e)
    np.maximum.at(y1, comp, y + 1)
    np.add.at(area, comp, e - s)
    return list(zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), area.tolist()))


def box_iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """h x w x 3 sRGB in [0, 1] -> CIELAB (D65), L in [0, 100]."""
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = lin @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]], np.float32)
    xyz /= np.array([0.9505, 1.0, 1.089], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def colour_map(frame, width: int, sigma: float = 1.0) -> np.ndarray:
    """Frequency-tuned saliency: CIELAB distance of each blurred pixel from the mean colour."""
    lab = _srgb_to_lab(frame if isinstance(frame, np.ndarray) and frame.dtype == np.float32 else _shrink(frame, width))
    mean = lab.reshape(-1, 3).mean(axis=0)
    blurred = _blur(lab, sigma)
    return np.sqrt(((blurred - mean) ** 2).sum(axis=-1)).astype(np.float32)


def salient_boxes(frame: np.ndarray, cfg: SaliencyConfig = SaliencyConfig()) -> np.ndarray:
    """K x 4 float boxes [x0, y0, x1, y1] in frame pixels, K <= cfg.max_proposals."""
    h, w = frame.shape[:2]
    # Shrunk once to about twice the widest level (the costly step at camera resolutions), then each
    # map from that copy.
    widest = max(width for width, _ in cfg.spectral + cfg.colour)
    image = Image.fromarray(np.ascontiguousarray(frame), 'RGB')
    if w > 2 * widest:
        image = image.reduce(max(1, w // (2 * widest)))
    shrunk = {width: _shrink(image, width) for width in {width for width, _ in cfg.spectral + cfg.colour}}
    maps: dict[tuple[str, int], np.ndarray] = {}
    found: list[tuple[float, float, float, float]] = []
    for kind, levels in (('spectral', cfg.spectral), ('colour', cfg.colour)):
        for width, k in levels:
            if (kind, width) not in maps:
                maps[kind, width] = (saliency_map(shrunk[width], width, cfg.spectral_blur) if kind == 'spectral'
                                     else colour_map(shrunk[width], width, cfg.colour_blur))
            sal = maps[kind, width]
            sy, sx = h / sal.shape[0], w / sal.shape[1]
            for x0, y0, x1, y1, _ in component_boxes(_close(sal > k * sal.mean())):
                box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
                if ((box[2] - box[0]) * (box[3] - box[1]) >= cfg.min_area * min(h, w) ** 2
                        and all(box_iou(box, b) <= cfg.max_overlap for b in found)):
                    found.append(box)
    return np.asarray(found[:cfg.max_proposals], np.float64).reshape(-1, 4)


def _close(mask: np.ndarray) -> np.ndarray:
    """Binary closing with a 3x3 cross (dilation, then erosion; outside the map counts as empty, so
    blobs cut by the border are eroded there): joins blobs split by a one-pixel gap."""
    def cross(m: np.ndarray, op) -> np.ndarray:
        p = np.pad(m, 1, mode='constant', constant_values=False)
        return op.reduce([p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
    return cross(cross(mask, np.logical_or), np.logical_and)
