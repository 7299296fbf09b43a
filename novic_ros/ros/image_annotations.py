"""The objects of one frame as foxglove_msgs/ImageAnnotations, drawn by Foxglove's Image panel over the
camera image: per object a closed outline of its box (PointsAnnotation LINE_LOOP) in its track's
colour, and a text '#<track id> <label> <score>' on a background of that colour at the box's top left
(inside the box where the box touches the image's top). Boxes are in the input image's pixels, the
origin at the top-left corner of the top-left pixel, as both vision_msgs and Foxglove define them.

ImageAnnotations has no header: the frame's stamp goes into its `timestamp` (and every annotation's),
which is what the Image panel matches to the image's header stamp; the frame_id goes into its
`metadata`, and each outline carries its object's id, label and score as metadata too."""
from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass
from typing import Sequence

from foxglove_msgs.msg import Color, ImageAnnotations, KeyValuePair, Point2, PointsAnnotation, TextAnnotation

OUTLINE_PX = 2.0
FONT_MIN_PX, FONT_FRACTION = 12.0, 1 / 32       # text height: 1/32 of the image height, at least 12 px
UNTRACKED = (0.9, 0.9, 0.9)


@dataclass(frozen=True)
class Annotated:
    """What is drawn for one object."""
    box: tuple[float, float, float, float]      # x0, y0, x1, y1 in pixels
    label: str
    score: float
    track_id: str = ''                          # '' when objects are not tracked


def track_colour(track_id: str) -> tuple[float, float, float]:
    """A bright colour that stays with a track id (hashed, so every process draws it alike)."""
    if not track_id:
        return UNTRACKED
    hue = (zlib.crc32(track_id.encode()) % 360) / 360.0
    return colorsys.hsv_to_rgb(hue, 0.85, 1.0)


def caption(obj: Annotated) -> str:
    text = f"{obj.label} {obj.score:.2f}"
    return f"#{obj.track_id} {text}" if obj.track_id else text


def annotations_message(header, objects: Sequence[Annotated], image_height: int) -> ImageAnnotations:
    stamp = header.stamp
    font = max(FONT_MIN_PX, image_height * FONT_FRACTION)
    out = ImageAnnotations(timestamp=stamp, metadata=[KeyValuePair(key='frame_id', value=header.frame_id)])
    for o in objects:
        x0, y0, x1, y1 = (float(v) for v in o.box)
        r, g, b = track_colour(o.track_id)
        colour = Color(r=r, g=g, b=b, a=1.0)
        meta = [KeyValuePair(key='label', value=o.label), KeyValuePair(key='score', value=f"{o.score:.4f}")]
        if o.track_id:
            meta.insert(0, KeyValuePair(key='id', value=o.track_id))
        out.points.append(PointsAnnotation(
            timestamp=stamp, type=PointsAnnotation.LINE_LOOP,
            points=[Point2(x=x0, y=y0), Point2(x=x1, y=y0), Point2(x=x1, y=y1), Point2(x=x0, y=y1)],
            outline_color=colour, fill_color=Color(r=r, g=g, b=b, a=0.0), thickness=OUTLINE_PX, metadata=meta))
        # The text's origin is its bottom-left corner: above the box, or inside it at the image's top.
        baseline = y0 - OUTLINE_PX if y0 >= font + OUTLINE_PX else y0 + font + OUTLINE_PX
        out.texts.append(TextAnnotation(
            timestamp=stamp, position=Point2(x=x0, y=baseline), text=caption(o), font_size=font,
            text_color=Color(r=0.0, g=0.0, b=0.0, a=1.0), background_color=Color(r=r, g=g, b=b, a=0.85)))
    return out
