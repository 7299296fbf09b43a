"""backend: auto on the CPU: the installed runtimes (ONNX Runtime, OpenVINO) are timed on the
bundle itself (one frame: encode + beam search over a typical label, a few runs, median) and the
fastest is kept. The measurement is cached per CPU model, runtime versions, bundle, precision,
thread count and beam width in <engine_dir>/auto_backend.json, so a restart builds only the winner.
Which runtime wins depends on the machine (OpenVINO on a Xeon with AMX, ONNX Runtime elsewhere):
a fixed order would be wrong on one of them."""
from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic_file import atomic_write_text
from ..core.bundle import Bundle
from ..core.generation import beam_search
from .devices import cpu_model

log = logging.getLogger(__name__)
CACHE_FILE = 'auto_backend.json'
TYPICAL_STEPS = 4          # decoding steps of a typical label (2.4 tokens on average, plus end-of-text)
RUNS, WARMUP = 5, 2


@dataclass(frozen=True)
class Selection:
    """The runtime `auto` chose and why (logged, shown in /diagnostics as backend_selection)."""
    backend: str
    measured_ms: dict[str, float]       # per candidate: one frame (encode + decode), median
    cached: bool
    key: str

    def describe(self) -> str:
        times = ', '.join(f"{k} {v:.1f} ms" for k, v in sorted(self.measured_ms.items(), key=lambda kv: kv[1]))
        return f"auto: {self.backend}, measured fastest on {self.key.split(' | ')[0]} ({times} a frame" \
               f"{'; cached measurement' if self.cached else ''})"


def selection_key(bundle: Bundle, versions: dict[str, str], precision: str, threads: int, beam_width: int) -> str:
    runtimes = ', '.join(f"{k} {v}" for k, v in sorted(versions.items()))
    return f"{cpu_model()} | {runtimes} | {bundle.key} | {precision} | threads {threads} | beam {beam_width}"


def time_frame(backend, bundle: Bundle, beam_width: int) -> float:
    """Median ms of one frame through `backend`: the encoder on one image, then beam search."""
    h, w = bundle.clip.preprocess.size
    pixels = np.zeros((1, 3, h, w), np.float32)

    def frame():
        embeds = backend.encode_images(pixels)
        if backend.runner is not None:
            beam_search(backend.runner, embeds, max(1, beam_width), min(TYPICAL_STEPS, backend.runner.max_tokens))

    for _ in range(WARMUP):
        frame()
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        frame()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def select(factories: dict[str, Callable[[], object]], versions: dict[str, str], bundle: Bundle, precision: str,
           threads: int, beam_width: int, engine_dir: Path):
    """(backend, Selection): the cached winner when this machine measured these candidates before,
    else every candidate built and timed, the fastest kept and the measurement cached."""
    key = selection_key(bundle, versions, precision, threads, beam_width)
    path = Path(engine_dir) / CACHE_FILE
    cache = _read(path)
    hit = cache.get(key)
    if hit and hit.get('backend') in factories:
        sel = Selection(hit['backend'], {k: float(v) for k, v in hit.get('measured_ms', {}).items()}, True, key)
        log.info("%s", sel.describe())
        return factories[sel.backend](), sel
    measured, built = {}, {}
    for name, make in factories.items():
        try:
            built[name] = make()
            measured[name] = round(time_frame(built[name], bundle, beam_width), 2)
        except Exception as e:                      # a runtime that cannot run this bundle is not a candidate
            log.warning("auto: %s left out (%s)", name, e)
            built.pop(name, None)
    if not measured:
        raise RuntimeError("auto: no runtime could run this bundle")
    winner = min(measured, key=measured.get)
    sel = Selection(winner, measured, False, key)
    cache[key] = {'backend': winner, 'measured_ms': measured, 'measured_at': time.strftime('%Y-%m-%dT%H:%M:%S')}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1) + '\n')
    except OSError as e:
        log.warning("auto: measurement not cached (%s: %s); the next start measures again", path, e)
    log.info("%s", sel.describe())
    return built[winner], sel


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
