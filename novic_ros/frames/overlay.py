"""Draw classification labels onto a frame for the debug image topic.

Like frames.conversion, this module needs no ROS so it can be tested and reused offline.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from novic_ros.core.errors import FrameError

__all__ = ['draw_labels']

# The box darkens what is behind it instead of hiding it, so the scene stays readable
# under the labels.
_BOX_KEEP = 0.35
_TEXT_FILL = (255, 255, 255)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size`; cached because load_default decodes it every call.

    Falls back to the fixed-size bitmap font where Pillow was built without FreeType,
    since a smaller label beats no debug image.
    """
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):
        return ImageFont.load_default()


def _line_text(label: str, score: float) -> str:
    """One overlay line; newlines would break the one-line-per-label layout."""
    clean = ' '.join(str(label).split())
    return f'{clean}  {float(score):.2f}'


def _text_extent(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str) -> tuple[int, int]:
    """Width and height the text covers when drawn at the origin.

    Measured from the origin rather than the ink bbox: the bbox top is below the origin
    by the ascender gap, and sizing by ink alone would clip descenders of the last line.
    """
    _, _, right, bottom = font.getbbox(text)
    return int(right), int(bottom)


def _font_pad(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    """Padding proportional to the font so big frames don't get cramped boxes."""
    return int(getattr(font, 'size', 12)) // 4


def draw_labels(rgb: np.ndarray, labels: Sequence[tuple[str, float]],
                max_labels: int = 5) -> np.ndarray:
    """Return a copy of `rgb` with the top `max_labels` labels and scores in the top-left.

    The font scales with the frame height (max(12, h // 30) px) so labels stay legible on
    both thumbnails and 4K frames; the box is clipped to the frame, so frames smaller than
    one line of text (e.g. 8x8) still come back unchanged in shape. Only the box region is
    round-tripped through Pillow, keeping the cost independent of the frame size.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise FrameError(
            f'draw_labels expects an HxWx3 uint8 RGB array, got shape {arr.shape} dtype '
            f'{arr.dtype}; convert the frame with frames.conversion.raw_to_rgb first')
    out = arr.copy()
    lines = [_line_text(label, score) for label, score in list(labels)[:max(0, max_labels)]]
    height, width = out.shape[:2]
    if not lines or height == 0 or width == 0:
        return out

    font = _font(max(12, height // 30))
    margin = max(2, _font_pad(font))
    sizes = [_text_extent(font, line) for line in lines]
    line_h = max(h for _, h in sizes) + margin
    box_w = min(width, max(w for w, _ in sizes) + 2 * margin)
    box_h = min(height, line_h * len(lines) + margin)

    region = out[:box_h, :box_w]
    region[...] = (region.astype(np.float32) * _BOX_KEEP).astype(np.uint8)
    tile = Image.fromarray(np.ascontiguousarray(region))
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        # Text beyond the tile is clipped by Pillow, which is what tiny frames need.
        draw.text((margin, margin + i * line_h), line, fill=_TEXT_FILL, font=font)
    region[...] = np.asarray(tile)
    return out

