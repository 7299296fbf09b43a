"""The objects of one frame (core.object_finder.FrameObjects) as vision_msgs/Detection2DArray: the input
header on the array and on every detection; each detection's bbox in pixels of the input image
(centre and size, theta 0) and one hypothesis, its free-text label with its score, best first.
The pose of the hypothesis stays zero: the mode finds where in the image, not where in space."""
from __future__ import annotations

from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis, ObjectHypothesisWithPose,
                             Point2D, Pose2D)

from ..core.object_finder import FrameObjects


def detections_message(header, found: FrameObjects) -> Detection2DArray:
    out = Detection2DArray(header=header)
    for o in found.objects:
        x0, y0, x1, y1 = o.box
        bbox = BoundingBox2D(center=Pose2D(position=Point2D(x=(x0 + x1) / 2, y=(y0 + y1) / 2), theta=0.0),
                             size_x=float(x1 - x0), size_y=float(y1 - y0))
        hyp = ObjectHypothesisWithPose(hypothesis=ObjectHypothesis(class_id=o.label, score=float(o.score)))
        # id stays empty: objects are not tracked from frame to frame (vision_msgs: "may be empty").
        out.detections.append(Detection2D(header=header, results=[hyp], bbox=bbox))
    return out
