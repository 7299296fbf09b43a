"""Which device to run on, without torch: a runtime install has no torch.cuda to ask, so the
NVIDIA driver library (libcuda, present wherever the driver is) is asked how many GPUs it sees."""
from __future__ import annotations

import ctypes
import re
from functools import lru_cache

from ..core.errors import ModelLoadError


@lru_cache(maxsize=1)
def cuda_device_count() -> int:
    try:
        cuda = ctypes.CDLL('libcuda.so.1')
    except OSError:
        return 0                                  # no NVIDIA driver
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0                                  # a driver without a usable GPU
    return count.value


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'; asking for a GPU that is not there is an
    error that names the fix."""
    if device == 'auto':
        return 'cuda' if cuda_device_count() else 'cpu'
    m = re.fullmatch(r'cuda(?::(\d+))?', device)
    if m and int(m.group(1) or 0) >= cuda_device_count():
        raise ModelLoadError(f"device {device!r} was asked for but {'no' if not cuda_device_count() else 'no such'} "
                             "CUDA GPU is present; use device 'cpu' or 'auto'")
    return device


def device_index(device: str) -> int:
    return int(device.split(':')[1]) if ':' in device else 0
