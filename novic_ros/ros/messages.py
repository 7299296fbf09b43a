"""Every message novic_node publishes, built in one place from the core's results. Each takes the
input frame's header (the labels, stable labels, categories, objects and overlay of a frame all
carry it unchanged) or, for the node's own status, a stamp.

- labels, labels_stable, categories: vision_msgs/Classification, one ObjectHypothesis per label
  (`class_id` = label text, `score` = probability), best first.
- objects: vision_msgs/Detection2DArray, the header on the array and on every detection; each
  detection's bbox in pixels of the input image (centre and size, theta 0) and one hypothesis, its
  free-text label with its score. The pose of the hypothesis stays zero: the mode finds where in
  the image, not where in space; `id` stays empty (objects are not tracked from frame to frame).
- the overlay: sensor_msgs/Image, rgb8.
- vision_info: vision_msgs/VisionInfo (what the texts say: vision_info.py).
- diagnostics: diagnostic_msgs/DiagnosticArray with one status.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import (BoundingBox2D, Classification, Detection2D, Detection2DArray, ObjectHypothesis,
                             ObjectHypothesisWithPose, Point2D, Pose2D, VisionInfo)

from ..core.frame_labels import FrameLabels
from ..core.object_finder import FrameObjects
from ..core.options import ClassifierOptions
from . import vision_info


def hypotheses(pairs: Iterable[tuple[str, float]]) -> list[ObjectHypothesis]:
    return [ObjectHypothesis(class_id=text, score=float(score)) for text, score in pairs]


def classification(header, pairs: Iterable[tuple[str, float]]) -> Classification:
    """(label, score) pairs, best first, as a Classification with the input's header."""
    return Classification(header=header, results=hypotheses(pairs))


def labels_message(header, labels: FrameLabels) -> Classification:
    """/novic/labels: a frame's labels."""
    return classification(header, ((l.text, l.score) for l in labels.labels))


def detections_message(header, found: FrameObjects) -> Detection2DArray:
    out = Detection2DArray(header=header)
    for o in found.objects:
        x0, y0, x1, y1 = o.box
        bbox = BoundingBox2D(center=Pose2D(position=Point2D(x=(x0 + x1) / 2, y=(y0 + y1) / 2), theta=0.0),
                             size_x=float(x1 - x0), size_y=float(y1 - y0))
        hyp = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=o.label, score=float(o.score)))
        out.detections.append(Detection2D(header=header, results=[hyp], bbox=bbox))
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
