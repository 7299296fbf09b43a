"""Side-by-side timing: candidates run interleaved, so drift and background load hit all alike."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeat: int = 10, warmup: int = 2,
                burst: int = 1) -> dict[str, float]:
    """Median milliseconds of each function, measured in alternation. With burst > 1 each turn runs
    a function `burst` times in a row and times all but the first: the steady state of a node that
    runs one model (its weights warm in the CPU's caches), where single alternated calls measure
    each candidate just after the others evicted it."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            if burst > 1:
                f()
            for _ in range(max(1, burst - 1)):
                t = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}
