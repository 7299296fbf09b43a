"""No exception reaches rclpy from novic_node's callbacks. An exception escaping a timer or
subscription callback ends the executor's spin (the node stops answering, or the process dies), one
escaping a parameter callback does the same through the parameter service, and rclpy's lifecycle
turns one escaping a transition into ERROR without a word. guard() wraps a callback: an exception
is logged with its traceback the first time (place, type) is seen, then throttled (ThrottledLog),
counted per place for /diagnostics (`callback_errors`), and the callback returns `fallback(error)`
(None by default) so the executor goes on. ROS-free and thread-safe.
"""
from __future__ import annotations

import functools
import threading
from collections import Counter
from typing import Callable

from .exit_signals import EXIT
from .throttled_log import ThrottledLog


class CallbackErrors:
    """Exceptions caught per place, for /diagnostics."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.last = ''

    def count(self, where: str, error: BaseException) -> None:
        with self._lock:
            self._counts[where] += 1
            self.last = f"{where}: {type(error).__name__}"

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


def place(callback) -> str:
    """A readable name for a callback: 'CameraInputs.watch', 'CameraInputs._create_subscription.<lambda>'."""
    name = getattr(callback, '__qualname__', None) or type(callback).__qualname__
    return name.replace('.<locals>', '')


def report(log: ThrottledLog, where: str, error: Exception) -> None:
    """An unexpected exception: its traceback once, then throttled; while the process exits (its
    publishers and subscriptions going away under a callback still running) one line, no traceback."""
    if EXIT.requested.is_set():
        log.warn_every(f"exiting:{where}", f"{where}: {type(error).__name__} while shutting down: {error}")
    else:
        log.unexpected(f"{where} failed", error)


def guard(callback: Callable, where: str, log: ThrottledLog, errors: CallbackErrors,
          fallback: Callable[[Exception], object] | None = None) -> Callable:
    @functools.wraps(callback)
    def guarded(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- the point: log, count, go on
            errors.count(where, e)
            report(log, where, e)
            return fallback(e) if fallback is not None else None
    guarded.novic_guarded = True
    return guarded
