"""Counters and rolling statistics the node reports on /diagnostics. ROS-free and thread-safe."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    received: int
    processed: int
    published: int
    dropped: int
    rejected: int
    errors: int
    input_rate_hz: float
    output_rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    inference_p50_ms: float
    frame_age_p50_ms: float          # receipt time - header stamp: camera pipeline + transport
    rejected_by_reason: dict = field(default_factory=dict)


class NodeStats:
    def __init__(self, window_s: float = 10.0, max_samples: int = 1000):
        self.window_s = window_s
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque(maxlen=max_samples * 10)
        self._outputs: deque[float] = deque(maxlen=max_samples * 10)
        self._latency: deque[float] = deque(maxlen=max_samples)
        self._inference: deque[float] = deque(maxlen=max_samples)
        self._age: deque[float] = deque(maxlen=max_samples)
        self.processed = self.published = self.errors = 0
        self.rejected: Counter[str] = Counter()

    def arrived(self, age_s: float | None = None) -> None:
        with self._lock:
            self._arrivals.append(time.monotonic())
            if age_s is not None:
                self._age.append(age_s * 1e3)

    def published_one(self, latency_s: float, inference_ms: float) -> None:
        with self._lock:
            self.published += 1
            self._outputs.append(time.monotonic())
            self._latency.append(latency_s * 1e3)
            self._inference.append(inference_ms)

    def processed_batch(self, n: int) -> None:
        with self._lock:
            self.processed += n

    def rejected_one(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def _rate(self, stamps: deque, now: float) -> float:
        recent = [t for t in stamps if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-6, recent[-1] - recent[0])

    def snapshot(self, received: int, dropped: int) -> StatsSnapshot:
        now = time.monotonic()
        with self._lock:
            lat = np.array(self._latency) if self._latency else np.zeros(1)
            inf = np.array(self._inference) if self._inference else np.zeros(1)
            age = np.array(self._age) if self._age else np.zeros(1)
            return StatsSnapshot(
                received=received, processed=self.processed, published=self.published, dropped=dropped,
                rejected=sum(self.rejected.values()), errors=self.errors,
                input_rate_hz=self._rate(self._arrivals, now), output_rate_hz=self._rate(self._outputs, now),
                latency_p50_ms=float(np.percentile(lat, 50)), latency_p95_ms=float(np.percentile(lat, 95)),
                inference_p50_ms=float(np.percentile(inf, 50)), frame_age_p50_ms=float(np.percentile(age, 50)),
                rejected_by_reason=dict(self.rejected))
