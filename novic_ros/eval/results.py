"""Per-frame evaluation results and their JSONL/CSV forms."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FrameResult:
    topic: str
    index: int                  # position within its topic
    stamp_ns: int               # header stamp
    frame_id: str
    timestamp_ns: int           # bag time
    labels: tuple[tuple[str, float], ...] = ()
    error: str | None = None    # the frame could not be used (and why)
    latency_ms: float | None = None
    answered: bool = True       # live: a label message came back for this frame

    @property
    def top(self) -> str | None:
        return self.labels[0][0] if self.labels else None


@dataclass
class LiveStats:
    sent: int = 0
    answered: int = 0
    input_rate_hz: float = 0.0
    output_rate_hz: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    latency_max_ms: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.sent - self.answered


def write_jsonl(results: list[FrameResult], path: Path) -> None:
    with open(path, 'w') as f:
        for r in results:
            d = asdict(r)
            d['labels'] = [{'label': t, 'score': round(s, 6)} for t, s in r.labels]
            f.write(json.dumps(d) + '\n')


def write_csv(results: list[FrameResult], path: Path, k: int) -> None:
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['topic', 'index', 'stamp_ns', 'frame_id', 'answered', 'latency_ms', 'error',
                    *[c for i in range(1, k + 1) for c in (f'label{i}', f'score{i}')]])
        for r in results:
            cells = [c for t, s in r.labels[:k] for c in (t, f"{s:.6f}")]
            cells += [''] * (2 * k - len(cells))
            w.writerow([r.topic, r.index, r.stamp_ns, r.frame_id, int(r.answered),
                        '' if r.latency_ms is None else f"{r.latency_ms:.2f}", r.error or '', *cells])
