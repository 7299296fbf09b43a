"""novic_node's inference worker: one thread that takes the newest pending frame of every camera
(LatestFrames), converts and classifies them in one batch (pipeline.classify_in_batches over
`node.live`, read once per batch) and publishes each frame's outputs: labels, labels_stable and
categories (LabelOutputs), the overlay while it has a subscriber, and the objects (all windows of
the batch's frames through the encoder and decoder in one call), tracked and annotated
(ObjectOutputs). The labels it publishes are offered to LabelInfo's class map (hybrid mode grows it).

A frame that cannot be used is rejected, counted by reason and warned about (throttled per
reason). Each output is published under its own try: one failing publisher costs that output of
that frame (counted in `output_errors`, its traceback logged once), not the others or the rest of
the batch. An unexpected failure of the inference itself skips the batch (`inference_errors`).
The thread runs while the node is active; it never touches the executor.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..frames.overlay import draw_labels
from ..pipeline import classify_in_batches
from . import messages
from .inputs import frame_from_msg
from .label_outputs import LabelOutputs
from .latest_frames import LatestFrames
from .node_stats import NodeStats
from .label_info import LabelMap
from .object_outputs import ObjectOutputs
from .throttled_log import ThrottledLog

JOIN_TIMEOUT_S = 30.0       # the batch in flight finishes (its labels are still valid)


@dataclass(frozen=True)
class Publishers:
    """What the worker publishes on, from configure to cleanup."""
    labels: object
    label_outputs: LabelOutputs
    overlay: object | None = None        # publish_overlay
    objects: ObjectOutputs | None = None     # objects: Detection2DArray, tracks, ImageAnnotations
    label_map: LabelMap | None = None        # LabelInfo's class map, offered every label published


class InferenceWorker:
    """Reads `node.live` (LiveSettings) and `node.outputs` (Publishers); counters live as long as the node."""

    def __init__(self, node, frames: LatestFrames, stats: NodeStats, log: ThrottledLog):
        self._node = node
        self._frames = frames
        self._stats = stats
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.overlays_published = 0
        self.objects_published = 0
        self.output_errors = 0

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='novic-inference', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=JOIN_TIMEOUT_S)
        self._thread = None

    def _run(self) -> None:
        next_start = 0.0
        while not self._stop.is_set():
            live = self._node.live
            rate = live.params.rate_hz
            if rate > 0:
                wait = next_start - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
            items = self._frames.take(live.params.model.batch_size, timeout=0.5)
            if not items:
                continue
            next_start = time.monotonic() + (1.0 / rate if rate > 0 else 0.0)
            try:
                self.process(items)
            except Exception as e:  # noqa: BLE001 -- keep the node alive whatever one batch does
                self._stats.error()
                self._log.unexpected('inference failed, batch skipped', e)

    def process(self, items) -> None:
        """Classify one batch of PendingFrames and publish every frame's outputs."""
        live, pubs = self._node.live, self._node.outputs    # one set of settings for the whole batch
        # Drawing costs a copy and text rendering per frame: only while someone subscribes to the overlay.
        overlay = pubs.overlay if pubs.overlay is not None and pubs.overlay.get_subscription_count() else None
        max_pixels = live.params.model.max_pixels
        label_map = pubs.label_map
        top_k = live.params.model.top_k      # the one live copy: what this batch's classifier was built with
        found = []
        grew = False
        for c in classify_in_batches(live.classifier, items, lambda item: frame_from_msg(item.msg, max_pixels),
                                     len(items)):
            if c.error is not None:
                self._reject(c.item.camera, c.error)
                continue
            self._stats.processed_batch(1)
            header = c.item.msg.header
            if self._output('labels', _publish_labels, pubs.labels, header, c.labels):
                self._stats.published_one(time.monotonic() - c.item.received, c.labels.per_frame_ms)
            self._output('labels_stable and categories', pubs.label_outputs.publish, c.item.camera, header, c.labels,
                         c.item.received, top_k)
            if overlay is not None and self._output('the overlay', _publish_overlay, overlay, header, c.frame, c.labels):
                self.overlays_published += 1
            if label_map is not None:
                grew = label_map.add(l.text for l in c.labels.labels) or grew
            found.append(c)
        if live.finder is not None and pubs.objects is not None and found:
            # All windows of all the batch's frames go through the encoder and decoder in one call.
            for c, objects in zip(found, live.finder.classify([c.frame for c in found])):
                if self._output('objects', pubs.objects.publish, c.item.camera, c.item.msg.header, objects,
                                c.item.received, c.frame.shape[0], top_k):
                    self.objects_published += 1
                if label_map is not None:
                    grew = label_map.add(o.label for o in objects.objects) or grew
        if grew:
            self._node.label_map_grew()

    def _output(self, what: str, publish: Callable[..., None], *args) -> bool:
        """publish(*args), True if it worked; a failure is counted and logged, and costs only this output."""
        try:
            publish(*args)
            return True
        except Exception as e:  # noqa: BLE001 -- one output's failure must not cost the others
            self.output_errors += 1
            self._log.unexpected(f"publishing {what} failed", e)
            return False

    def _reject(self, camera: str, error: Exception) -> None:
        reason = getattr(error, 'reason', 'invalid frame')
        self._stats.rejected_one(reason)
        # Throttled per reason, so a flood of one problem cannot hide another.
        self._log.warn_every(reason, f"frame from {camera} rejected ({reason}): {error}")


def _publish_labels(pub, header, labels) -> None:
    pub.publish(messages.labels_message(header, labels))


def _publish_overlay(pub, header, frame, labels) -> None:
    pub.publish(messages.rgb_image(header, draw_labels(frame, [(l.text, l.score) for l in labels.labels])))

