"""Work beside inference gives way to it: a thread that runs long loops next to the node's inference
worker (the settings thread building a live change) enters paced(pause), and those loops (embedding
a label list in text_cache, reading a labels file in label_files) call a Steps object between
steps, which calls `pause(seconds the step took)` on that thread only. Outside paced() a Steps call
costs a clock read. ROS-free, no imports beyond the standard library."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

_local = threading.local()


@contextmanager
def paced(pause: Callable[[float], object]) -> Iterator[None]:
    """Within this block, the calling thread's Steps call `pause` between steps (other threads are
    not affected)."""
    before = getattr(_local, 'pause', None)
    _local.pause = pause
    try:
        yield
    finally:
        _local.pause = before


def pacing() -> bool:
    """True on a thread inside paced(): work beside inference, which a backend may run on fewer
    threads (the torch text tower runs on one)."""
    return getattr(_local, 'pause', None) is not None


class Steps:
    """Call once between two steps of a loop: on a paced thread, the pause is called with the time
    since the previous call (or since this object was made)."""

    def __init__(self):
        self._pause = getattr(_local, 'pause', None)
        self._since = time.monotonic()

    def __call__(self) -> None:
        if self._pause is not None:
            self._pause(time.monotonic() - self._since)
            self._since = time.monotonic()
