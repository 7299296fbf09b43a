"""How much memory this process holds, handing freed memory back to the system (a lifecycle
cleanup that drops the model should show up as memory the robot can use again), and keeping
Python's cyclic garbage collector off what a configure loaded. ROS-free."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time


def rss_mb(pid: int | str = 'self') -> float:
    """Resident set size (VmRSS) of this process or of process `pid`, in MB; 0.0 where /proc is not there."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def settle_loaded() -> None:
    """After a configure: collect once, then move every object alive now (torch and open_clip's
    modules, the tokenizer, WordNet, rclpy: about 463,000 in a toy node) into the collector's
    permanent generation, so later full collections scan only what came after. A full collection
    over them took 217 ms holding the interpreter lock, on whichever thread allocated last: a live change
    (27,653 labels) set it off on the settings thread and no frame was labelled meanwhile. Frozen
    objects are still freed by reference counting; reference cycles among them wait for
    release_freed_memory. The freeze is the process's: nodes sharing a process share it."""
    gc.collect()
    gc.freeze()


def release_freed_memory() -> None:
    """Collect the model's reference cycles (those frozen by settle_loaded too), then ask glibc to
    return free heap pages to the system (freed small allocations otherwise stay in the process for
    reuse and keep VmRSS up)."""
    gc.unfreeze()
    gc.collect()
    libc = ctypes.util.find_library('c')
    if libc:
        try:
            ctypes.CDLL(libc).malloc_trim(0)
        except (OSError, AttributeError):     # not glibc (musl, macOS): nothing to trim
            pass


class CollectorPauses:
    """Python's cyclic collections in this process, from gc.callbacks: how many full (oldest
    generation) collections ran and the longest pause of any, since reset(); what the
    collector skips (frozen objects). A pause holds the interpreter lock: no frame is labelled
    meanwhile. Collections never overlap (the lock serialises them), so one start time suffices."""

    def __init__(self):
        self._start = 0.0
        self.full = 0
        self.longest_ms = 0.0
        gc.callbacks.append(self._on_collect)

    def _on_collect(self, phase: str, info: dict) -> None:
        if phase == 'start':
            self._start = time.perf_counter()
            return
        self.longest_ms = max(self.longest_ms, (time.perf_counter() - self._start) * 1e3)
        if info.get('generation') == 2:
            self.full += 1

    def reset(self) -> None:
        self.full, self.longest_ms = 0, 0.0

    def close(self) -> None:
        if self._on_collect in gc.callbacks:
            gc.callbacks.remove(self._on_collect)

    def diagnostics(self) -> dict[str, str]:
        return {'gc_frozen_objects': str(gc.get_freeze_count()), 'gc_full_collections': str(self.full),
                'gc_longest_pause_ms': f"{self.longest_ms:.1f}"}
