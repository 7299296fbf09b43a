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


INT8_DOT_FLAGS = ('avx512_vnni', 'avx_vnni', 'amx_int8', 'asimddp')    # x86 VNNI / AMX, ARM dot product


@lru_cache(maxsize=1)
def cpu_int8_dot() -> str:
    """The CPU's int8 dot-product instructions that ONNX Runtime's integer kernels use ('' if none:
    int8 graphs then run on plain SIMD and may gain little over fp32)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((set(line.split(':', 1)[1].split()) for line in f if line.startswith(('flags', 'Features'))), set())
    except OSError:
        return ''
    return ', '.join(f for f in INT8_DOT_FLAGS if f in flags)
