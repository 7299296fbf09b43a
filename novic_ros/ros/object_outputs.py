"""What novic_node publishes of the objects it finds (`objects: true`): vision_msgs/Detection2DArray on
`objects_topic`, each object tracked from frame to frame (core.tracks: `Detection2D.id` and the
track's smoothed labels, with `track_objects`), and foxglove_msgs/ImageAnnotations on
`annotations_topic` (boxes, ids and labels for Foxglove's Image panel), built only while someone
subscribes to it. Every message carries the input frame's header (ImageAnnotations: its stamp).

A tracking stream is one camera: the topic a frame came on and its header's frame_id; its time is the
frames' header stamps (receipt time for unstamped frames). Cameras that send nothing for
`track_timeout_s` are dropped by a 1 Hz timer; their objects get new ids when they come back."""
from __future__ import annotations

import threading
import time

from foxglove_msgs.msg import ImageAnnotations
from vision_msgs.msg import Detection2DArray

from ..core.object_finder import FrameObjects
from ..core.stable_labels import default_merge_key
from ..core.tracks import ObjectTracker
from ..params import NodeParams
from .messages import detections_message
from .image_annotations import Annotated, annotations_message

EXPIRE_PERIOD_S = 1.0


class ObjectOutputs:
    """The objects and annotations publishers, and the tracker. publish() runs on the inference worker,
    prepare() on the parameter callback, the expiry on a timer: the tracker locks itself and settings
    are swapped whole."""

    def __init__(self, node, params: NodeParams, merge_key=default_merge_key, lifecycle: bool = True):
        self._node = node
        self._lifecycle = lifecycle
        create = node.create_lifecycle_publisher if lifecycle else node.create_publisher
        self.objects_pub = create(Detection2DArray, params.objects_topic, 10)
        self.annotations_pub = create(ImageAnnotations, params.annotations_topic, 10)
        self.tracker = ObjectTracker(params.track_options(), params.stability_options(), merge_key=merge_key)
        self._settings_lock = threading.Lock()
        self._tracking = params.track_objects
        self.published = self.annotations_published = 0
        self._timer = node.create_timer(EXPIRE_PERIOD_S, lambda: self.tracker.expire(time.monotonic()))

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        destroy = self._node.destroy_lifecycle_publisher if self._lifecycle else self._node.destroy_publisher
        for pub in (self.objects_pub, self.annotations_pub):
            destroy(pub)
        self.tracker.clear()

    def prepare(self, params: NodeParams):
        """Check a live change (ValueError names what is wrong); returns what applies it."""
        track, stability = params.track_options(), params.stability_options()

        def apply() -> None:
            with self._settings_lock:
                self.tracker.options, self.tracker.stability = track, stability
                if self._tracking and not params.track_objects:
                    self.tracker.clear()
                self._tracking = params.track_objects
        return apply

    def publish(self, camera: str, header, found: FrameObjects, received: float, image_height: int,
                top_k: int) -> None:
        """One frame's objects; a tracked one lists its track's best `top_k` labels (the batch's setting)."""
        with self._settings_lock:
            tracking = self._tracking
        tracked = None
        if tracking:
            stamp = (
                header.stamp.sec + header.stamp.nanosec * 1e-9 if header.stamp.sec or header.stamp.nanosec else received
            )
            tracked = self.tracker.update((camera, header.frame_id), stamp, found.objects, received)
        self.objects_pub.publish(detections_message(header, found, tracked, top_k))
        self.published += 1
        # Building the annotations costs a little per object: only while someone looks.
        if self.annotations_pub.get_subscription_count():
            if tracked is not None:
                drawn = [Annotated(t.box, t.label, t.labels.label.score if t.labels.label else t.detection.score,
                                   t.track_id) for t in tracked]
            else:
                drawn = [Annotated(o.box, o.label, o.score) for o in found.objects]
            self.annotations_pub.publish(annotations_message(header, drawn, image_height))
            self.annotations_published += 1

    def diagnostics(self) -> dict[str, str]:
        return {'tracks_active': str(self.tracker.active()), 'tracks_started': str(self.tracker.started),
                'annotations_published': str(self.annotations_published)}
