"""make bench, section frames: what one frame costs to decode and preprocess, a camera frame beside
frames of extreme shape or size (the issue's 201-byte 1x40000 PNG and 445 KB 12000x12000 PNG), with the
peak memory each adds. Targets: no frame more than 0.2 s beyond a normal one, nor 100 MB."""
from __future__ import annotations

import io
import multiprocessing
from pathlib import Path

from PIL import Image

from ..core.preprocess import PreprocessConfig, Preprocessor
from ..params import DEFAULT_MAX_PIXELS
from ..frames.conversion import ImageConversionError, compressed_to_rgb, encode_compressed
from ..ros.stock_camera import smooth_pattern
from .sections import _table
from .timing import interleaved

_STATUS = Path('/proc/self/status')


def _encoded(h: int, w: int, fmt: str, flat: bool = False) -> bytes:
    if flat:      # one colour: a few hundred bytes that decode to any size
        buf = io.BytesIO()
        Image.new('L', (w, h), 90).save(buf, format=fmt.upper())
        return buf.getvalue()
    return encode_compressed(smooth_pattern(h, w), fmt)


def _kib(key: str) -> int:
    return next(int(line.split()[1]) for line in _STATUS.read_text().splitlines() if line.startswith(key + ':'))


def _preprocessor() -> Preprocessor:
    return Preprocessor(PreprocessConfig((224, 224), (0.48145466, 0.4578275, 0.40821073),
                                         (0.26862954, 0.26130258, 0.27577711)))


def _decode_and_preprocess(pre: Preprocessor, fmt: str, data: bytes) -> str:
    try:
        pre(compressed_to_rgb(fmt, data))
        return 'labelled'
    except ImageConversionError as e:
        return f"rejected ({e.reason})"


def _peak_growth_child(fmt: str, data: bytes) -> float:
    """In a fresh process (memory an earlier frame freed would hide the peak): peak RSS above the RSS
    before the frame (Linux: /proc/self/clear_refs restarts the peak), after one warm-up camera frame."""
    pre = _preprocessor()
    _decode_and_preprocess(pre, 'jpeg', _encoded(480, 640, 'jpeg'))
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        return float('nan')
    before = _kib('VmRSS')
    _decode_and_preprocess(pre, fmt, data)
    return (_kib('VmHWM') - before) / 1024


def _peak_growth_mb(fmt: str, data: bytes) -> float:
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(_peak_growth_child, (fmt, data))


def frame_cost(repeat: int) -> str:
    pre = _preprocessor()
    frames = {
        '640x480 JPEG (camera frame)': ('jpeg', _encoded(480, 640, 'jpeg')),
        '1920x1080 JPEG': ('jpeg', _encoded(1080, 1920, 'jpeg')),
        '3840x2160 JPEG (4K UHD: max_pixels)': ('jpeg', _encoded(2160, 3840, 'jpeg')),
        '4000x3000 JPEG (12 MP)': ('jpeg', _encoded(3000, 4000, 'jpeg')),
        '1x40000 PNG': ('png', _encoded(1, 40000, 'png', flat=True)),
        '40000x1 PNG': ('png', _encoded(40000, 1, 'png', flat=True)),
        '12000x12000 PNG': ('png', _encoded(12000, 12000, 'png', flat=True)),
    }
    outcome = {}

    def run(name: str):
        outcome[name] = _decode_and_preprocess(pre, *frames[name])

    ms = interleaved({name: (lambda name=name: run(name)) for name in frames}, repeat)
    base = ms['640x480 JPEG (camera frame)']
    rows = [[name, f"{len(data):,}", outcome[name], ms[name], ms[name] - base, _peak_growth_mb(fmt, data)]
            for name, (fmt, data) in frames.items()]
    return _table(['frame', 'bytes', f'outcome (max_pixels {DEFAULT_MAX_PIXELS:,})', 'decode + preprocess ms',
                   'beyond a camera frame ms (target <= 200)', 'peak RSS growth MB (target < 100)'], rows)
