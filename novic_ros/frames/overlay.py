"""Draw classification labels onto a frame for the debug image topic.

Like frames.conversion, this module needs no ROS so it can be tested and reused offline.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from novic_ros.core.errors import FrameError

__all__ = ['draw_labels', 'draw_objects']

# The box darkens what is behind it instead of hiding it, so the scene stays readable
# under the labels.
_BOX_KEEP = 0.35
_TEXT_FILL = (255, 255, 255)
# Box colours, one per object in rank order (bright on most scenes, told apart side by side).
OBJECT_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 80), (255, 80, 220), (255, 140, 0))


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



def draw_objects(rgb: np.ndarray, objects: Sequence[tuple[str, float, tuple[float, float, float, float]]],
                 max_objects: int = 10) -> np.ndarray:
    """Return a copy of `rgb` with each object's box (x0, y0, x1, y1 in pixels) outlined and its label
    and score written on a band of the box's colour at the box's top left: above the box, or inside
    it where the box touches the frame's top (as the node's Foxglove annotations place it). Boxes are
    clipped to the frame; the outline is 1/150 of the frame's shorter side, at least 2 px; the text
    height as draw_labels' (1/30 of the frame's height, at least 12 px)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise FrameError(
            f'draw_objects expects an HxWx3 uint8 RGB array, got shape {arr.shape} dtype '
            f'{arr.dtype}; convert the frame with frames.conversion.raw_to_rgb first')
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        return arr.copy()
    img = Image.fromarray(np.ascontiguousarray(arr))
    draw = ImageDraw.Draw(img)
    font = _font(max(12, height // 30))
    margin = max(1, _font_pad(font) // 2)
    line = max(2, min(height, width) // 150)
    shown = list(enumerate(list(objects)[:max(0, max_objects)]))
    for i, (label, score, box) in reversed(shown):          # the best object drawn last: on top where they overlap
        colour = OBJECT_COLOURS[i % len(OBJECT_COLOURS)]
        x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
        x1, y1 = min(width - 1, int(round(box[2]))), min(height - 1, int(round(box[3])))
        if x1 < x0 or y1 < y0:
            continue
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        text = _line_text(label, score)
        text_w, text_h = _text_extent(font, text)
        band_h = text_h + 2 * margin
        top = y0 - band_h if y0 - band_h >= 0 else y0       # above the box, or inside it at the frame's top
        left = max(0, min(x0, width - text_w - 2 * margin))  # moved left rather than cut at the frame's edge
        draw.rectangle((left, top, min(width - 1, left + text_w + 2 * margin), top + band_h - 1), fill=colour)
        draw.text((left + margin, top + margin), text, fill=(0, 0, 0), font=font)
    return np.asarray(img).copy()
