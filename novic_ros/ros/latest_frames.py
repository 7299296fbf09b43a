"""Newest-frame-per-camera hand-off between subscription callbacks and the inference worker.

Callbacks only store the message (O(1), never blocking on inference); a newer frame from the
same camera replaces an unprocessed older one, which is counted as dropped. The worker takes
the newest pending frame of each camera, oldest-waiting camera first, so one busy camera
cannot starve another. ROS-free.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PendingFrame:
    camera: str
    msg: Any
    received: float          # time.monotonic() at arrival


class LatestFrames:
    def __init__(self):
        self._pending: dict[str, PendingFrame] = {}
        self._cond = threading.Condition()
        self.dropped = 0
        self.received = 0
        self._closed = False

    def put(self, camera: str, msg: Any) -> None:
        item = PendingFrame(camera, msg, time.monotonic())
        with self._cond:
            self.received += 1
            if camera in self._pending:
                self.dropped += 1
            else:
                self._cond.notify()
            self._pending[camera] = item

    def take(self, max_frames: int, timeout: float | None = None) -> list[PendingFrame]:
        """Up to max_frames pending frames (one per camera, oldest arrival first); waits up to
        `timeout` seconds for the first one. Empty when closed or timed out."""
        with self._cond:
            if not self._pending and not self._closed:
                self._cond.wait(timeout)
            items = sorted(self._pending.values(), key=lambda p: p.received)[:max_frames]
            for p in items:
                del self._pending[p.camera]
            return items

    def wake(self) -> None:
        """End a take() that is waiting now (it returns what is pending, maybe nothing)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
