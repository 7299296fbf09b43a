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

The worker is watched (worker_watch.py, WorkerWatch: watch() on the node's 1 Hz diagnostics timer
reports a dead or stuck thread and replaces it; health() says so in /diagnostics).

The rate limit sleeps in slices of at most MAX_WAIT_S and re-reads `rate_hz` after each, and wake()
(called when the live settings change) ends a sleep at once: a new rate applies from the last
batch's start, whatever the old one was (1e-6 Hz, 1e-300 Hz or a denormal: no overflow, no days asleep).
"""
from __future__ import annotations

import math
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
from .worker_watch import WorkerWatch

JOIN_TIMEOUT_S = 30.0       # the batch in flight finishes (its labels are still valid)
MAX_WAIT_S = 0.5            # the longest single sleep: rate_hz is re-read after each
MAX_PERIOD_S = 1e6          # a rate below 1e-6 Hz sleeps as long as 1e-6 Hz (no float overflow)


@dataclass(frozen=True)
class Publishers:
    """What the worker publishes on, from configure to cleanup."""
    labels: object
    label_outputs: LabelOutputs
    overlay: object | None = None        # publish_overlay
    objects: ObjectOutputs | None = None     # objects: Detection2DArray, tracks, ImageAnnotations
    label_map: LabelMap | None = None        # LabelInfo's class map, offered every label published


def period_s(rate_hz) -> float:
    """Seconds between batch starts for `rate_hz` (0, negative, NaN, not a number: no limit), at most
    MAX_PERIOD_S."""
    try:
        rate = float(rate_hz)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if not rate > 0 or math.isinf(rate):
        return 0.0
    return min(1.0 / rate, MAX_PERIOD_S)       # 1 / 5e-324 is inf: min() keeps it finite


class InferenceWorker(WorkerWatch):
    """Reads `node.live` (LiveSettings) and `node.outputs` (Publishers); counters live as long as the node."""

    def __init__(self, node, frames: LatestFrames, stats: NodeStats, log: ThrottledLog,
                 fault: tuple[str, int] | None = None):
        self._node = node
        self._frames = frames
        self._stats = stats
        self._log = log
        self._fault = fault
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._abandoned: threading.Thread | None = None     # stuck in a batch, replaced
        self._generation = 0
        self._running = False                   # between start() and stop()
        self._died: BaseException | None = None
        self._batch_started: float | None = None
        self._received_at_batch = 0
        self._sleeping = False
        self._idle = threading.Event()              # set while no batch is being computed
        self._idle.set()
        self._slowest_s = 0.0
        self._batches = 0
        self._failures_in_a_row = 0
        self._restart_at: float | None = None
        self._failed_at = -1e18
        self._cause = ''
        self.restarts = 0
        self.overlays_published = 0
        self.objects_published = 0
        self.output_errors = 0

    def start(self) -> None:
        with self._lock:
            self._stop = threading.Event()
            self._running = True
            self._restart_at = None
            self._spawn()

    def _spawn(self) -> None:
        """A new thread of a new generation (under the lock)."""
        self._generation += 1
        self._died = None
        self._batch_started = None
        self._thread = threading.Thread(target=self._run, args=(self._generation, self._stop), name='novic-inference',
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """The live settings changed: a sleep for the rate limit ends now and the new rate applies."""
        self._wake.set()

    def stop(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        with self._lock:
            self._running = False
            self._stop.set()
            thread, self._thread = self._thread, None
        self._wake.set()
        self._frames.wake()
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no batch is being computed, at most `timeout` seconds (a thread doing work
        beside the worker gives way to it: see NovicNode._build_change); True when idle."""
        return self._idle.wait(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _run(self, generation: int, stop: threading.Event) -> None:
        try:
            self._loop(generation, stop)
        except BaseException as e:  # noqa: BLE001 -- recorded for watch(), which reports and restarts
            if generation == self._generation and not stop.is_set():
                self._died = e

    def _loop(self, generation: int, stop: threading.Event) -> None:
        last_start = -math.inf
        while not stop.is_set() and generation == self._generation:
            self._wake.clear()
            live = self._node.live
            wait = last_start + period_s(live.params.rate_hz) - time.monotonic()
            if wait > 0:
                self._sleeping = True
                self._wake.wait(min(wait, MAX_WAIT_S))
                self._sleeping = False
                continue                        # re-read the rate: it may have changed meanwhile
            items = self._frames.take(live.params.model.batch_size, timeout=MAX_WAIT_S)
            if not items or not self._current(generation):
                continue
            last_start = time.monotonic()
            self._batch_started, self._received_at_batch = last_start, self._frames.received
            self._idle.clear()
            try:
                self._inject(generation)
                self.process(items, generation)
            except Exception as e:  # noqa: BLE001 -- keep the node alive whatever one batch does
                if self._current(generation):
                    self._stats.error()
                    self._log.unexpected('inference failed, batch skipped', e)
            finally:
                took = time.monotonic() - last_start
                self._idle.set()
                if generation == self._generation:
                    self._batch_started = None
                    self._slowest_s = max(self._slowest_s, took)
            self._batches += 1

    def process(self, items, generation: int | None = None) -> None:
        """Classify one batch of PendingFrames and publish every frame's outputs (nothing once a newer
        worker thread than `generation` replaced this one, or the worker stops)."""
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
            if generation is not None and not self._current(generation):
                return                                  # replaced or stopping: publish nothing more
            if c.error is not None:
                self._reject(c.item.camera, c.error)
                continue
            self._stats.processed_batch(1)
            header = c.item.msg.header
            if self._output('labels', _publish_labels, pubs.labels, header, c.labels):
                self._stats.published_one(time.monotonic() - c.item.received, c.labels.per_frame_ms)
            self._output('labels_stable and categories', pubs.label_outputs.publish, c.item.camera, header, c.labels,
                         c.item.received, top_k)
            if overlay is not None and self._output(
                'the overlay', _publish_overlay, overlay, header, c.frame, c.labels
            ):
                self.overlays_published += 1
            if label_map is not None:
                grew = label_map.add(l.text for l in c.labels.labels) or grew
            found.append(c)
        if generation is not None and not self._current(generation):
            return
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
            if self.stopping:
                return False        # the node is shutting down: its publishers go away
            self.output_errors += 1
            self._log.unexpected(f"publishing {what} failed", e)
            return False

    def _reject(self, camera: str, error: Exception) -> None:
        reason = error.reason
        self._stats.rejected_one(reason)
        # Throttled per reason, so a flood of one problem cannot hide another.
        self._log.warn_every(reason, f"frame from {camera} rejected ({reason}): {error}")


def _publish_labels(pub, header, labels) -> None:
    pub.publish(messages.labels_message(header, labels))


def _publish_overlay(pub, header, frame, labels) -> None:
    pub.publish(messages.rgb_image(header, draw_labels(frame, [(l.text, l.score) for l in labels.labels])))

