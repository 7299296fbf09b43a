"""Every message novic_node publishes, built in one place from the core's results. Each takes the
input frame's header (the labels, stable labels, categories, objects and overlay of a frame all
carry it unchanged) or, for the node's own status, a stamp.

- labels, labels_stable, categories: vision_msgs/Classification, one ObjectHypothesis per label
  (`class_id` = label text, `score` = probability), best first.
- objects: vision_msgs/Detection2DArray, the header on the array and on every detection; each
  detection's bbox in pixels of the input image (centre and size, theta 0). The pose of the
  hypotheses stays zero: the mode finds where in the image, not where in space. Untracked, one
  hypothesis (the frame's own label with its score) and an empty `id`; tracked (core.tracks), `id`
  is its track's id, stable while the object stays in view, and the hypotheses are the track's
  smoothed labels, the stable one first (top_k, each with its synonym group's smoothed score).
- annotations: foxglove_msgs/ImageAnnotations (image_annotations.py draws them).
- label_info: vision_msgs/LabelInfo (label_info.py keeps the class map).
- the overlay: sensor_msgs/Image, rgb8.
- vision_info: vision_msgs/VisionInfo (what the texts say: vision_info.py).
- diagnostics: diagnostic_msgs/DiagnosticArray with one status.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import (BoundingBox2D, Classification, Detection2D, Detection2DArray, ObjectHypothesis,
                             ObjectHypothesisWithPose, Point2D, Pose2D, VisionInfo)

from ..core.frame_labels import FrameLabels
from ..core.object_finder import FrameObjects
from ..core.options import ClassifierOptions
from ..core.tracks import TrackedObject
from . import vision_info


def hypotheses(pairs: Iterable[tuple[str, float]]) -> list[ObjectHypothesis]:
    return [ObjectHypothesis(class_id=text, score=float(score)) for text, score in pairs]


def classification(header, pairs: Iterable[tuple[str, float]]) -> Classification:
    """(label, score) pairs, best first, as a Classification with the input's header."""
    return Classification(header=header, results=hypotheses(pairs))


def labels_message(header, labels: FrameLabels) -> Classification:
    """/novic/labels: a frame's labels."""
    return classification(header, ((l.text, l.score) for l in labels.labels))


def _bbox(box) -> BoundingBox2D:
    x0, y0, x1, y1 = box
    return BoundingBox2D(center=Pose2D(position=Point2D(x=(x0 + x1) / 2, y=(y0 + y1) / 2), theta=0.0),
                         size_x=float(x1 - x0), size_y=float(y1 - y0))


def _hypothesis(text: str, score: float) -> ObjectHypothesisWithPose:
    return ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=text, score=float(score)))


def detections_message(header, found: FrameObjects, tracked: Sequence[TrackedObject] | None = None,
                       top_k: int = 1) -> Detection2DArray:
    out = Detection2DArray(header=header)
    if tracked is None:
        for o in found.objects:
            out.detections.append(
                Detection2D(header=header, results=[_hypothesis(o.label, o.score)], bbox=_bbox(o.box))
            )
        return out
    for t in tracked:
        ranked = [(g.text, g.score) for g in t.labels.top(top_k)] or [(t.detection.label, t.detection.score)]
        out.detections.append(Detection2D(header=header, results=[_hypothesis(text, s) for text, s in ranked],
                                          bbox=_bbox(t.box), id=t.track_id))
    return out


def rgb_image(header, rgb: np.ndarray) -> Image:
    """An HxWx3 uint8 frame as an rgb8 Image (the overlay)."""
    h, w = rgb.shape[:2]
    return Image(header=header, height=h, width=w, encoding='rgb8', is_bigendian=0, step=w * 3, data=rgb.tobytes())


def vision_info_message(method_text: str, options: ClassifierOptions, node: str, labels_file: str, version: int,
                        stamp) -> VisionInfo:
    msg = VisionInfo(method=method_text, database_location=vision_info.database_location(options, node, labels_file),
                     database_version=version)
    msg.header.stamp = stamp
    return msg


def diagnostics_message(stamp, level: bytes, name: str, message: str, hardware_id: str,
                        values: dict[str, str]) -> DiagnosticArray:
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
