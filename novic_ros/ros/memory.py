"""How much memory this process holds, and handing freed memory back to the system: a lifecycle
cleanup that drops the model should show up as memory the robot can use again. ROS-free."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc


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


def release_freed_memory() -> None:
    """Collect the model's reference cycles, then ask glibc to return free heap pages to the system
    (freed small allocations otherwise stay in the process for reuse and keep VmRSS up)."""
    gc.collect()
    libc = ctypes.util.find_library('c')
    if libc:
        try:
            ctypes.CDLL(libc).malloc_trim(0)
        except (OSError, AttributeError):     # not glibc (musl, macOS): nothing to trim
            pass
