"""What novic_node says about problems that repeat: a warning once per key per period, and for an
unexpected exception its traceback the first time that (place, exception type) is seen, then one
throttled line per period. A flood of one problem cannot hide another (each has its own key), and a
bug reads as a bug (its traceback is in the log once) rather than as a throttled one-line message.
ROS-free (any logger with warning() and error()) and thread-safe."""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable

WARN_THROTTLE_S = 5.0


class ThrottledLog:
    def __init__(self, logger, clock: Callable[[], float] = time.monotonic):
        self._logger = logger
        self._clock = clock
        self._last: dict[object, float] = {}
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def _due(self, key, every_s: float) -> bool:
        now = self._clock()
        with self._lock:
            if now - self._last.get(key, -1e18) < every_s:
                return False
            self._last[key] = now
            return True

    def warn_every(self, key: str, text: str, every_s: float = WARN_THROTTLE_S) -> bool:
        """Log `text` unless `key` was warned about less than `every_s` ago; True when logged."""
        if not self._due(('warning', key), every_s):
            return False
        self._logger.warning(text)
        return True

    def unexpected(self, where: str, error: BaseException, every_s: float = WARN_THROTTLE_S) -> bool:
        """An exception nobody expected at `where` (e.g. 'inference failed, batch skipped'): its traceback
        the first time its type is seen there, a throttled one-line error afterwards; True when logged."""
        key = (where, type(error).__name__)
        line = f"{where}: {type(error).__name__}: {error}"
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
        if first:
            self._due(('unexpected', key), every_s)        # the throttle period starts with the traceback
            trace = ''.join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
            self._logger.error(f"{line}\n{trace}")
            return True
        if not self._due(('unexpected', key), every_s):
            return False
        self._logger.error(f"{line} (again; its traceback was logged the first time)")
        return True
