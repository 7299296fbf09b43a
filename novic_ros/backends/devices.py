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
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 'flags', ARM 'Features'); empty where unreadable."""
    try:
        with open('/proc/cpuinfo') as f:
            return frozenset(next((line.split(':', 1)[1].split() for line in f
                                   if line.startswith(('flags', 'Features'))), ()))
    except OSError:
        return frozenset()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name ('model name' in /proc/cpuinfo), else the platform's processor string."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or 'unknown CPU'


def cpu_int8_dot() -> str:
    """The CPU's int8 dot-product instructions that ONNX Runtime's integer kernels use ('' if none:
    int8 graphs then run on plain SIMD and may gain little over fp32)."""
    return ', '.join(f for f in INT8_DOT_FLAGS if f in cpu_flags())


BF16_FLAGS = ('amx_bf16', 'avx512_bf16')       # Intel AMX tiles, AVX-512 bfloat16 dot products


def cpu_bf16() -> str:
    """The CPU's bfloat16 matrix instructions ('' if none: OpenVINO would emulate bf16, slower than fp32)."""
    return ', '.join(f for f in BF16_FLAGS if f in cpu_flags())
