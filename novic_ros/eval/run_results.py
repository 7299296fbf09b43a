"""Per-frame evaluation results, the per-topic account of a run (read, skipped and why,
labelled), and their JSONL/CSV forms."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FrameResult:
    topic: str
    index: int | None           # position within its topic (None: unknown, see BagFrame.index)
    stamp_ns: int               # header stamp
    frame_id: str
    timestamp_ns: int           # bag time
    labels: tuple[tuple[str, float], ...] = ()
    error: str | None = None    # the frame could not be used (and why)
    reason: str | None = None   # short category of `error`, for counting
    latency_ms: float | None = None
    answered: bool = True       # live: a label message came back for this frame
    boxes: tuple[tuple[float, float, float, float], ...] = ()   # --objects: each label's box (x0, y0, x1, y1 px)

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


@dataclass(frozen=True)
class TopicSummary:
    """What became of one image topic's messages: read from the bag, skipped (unreadable
    messages and frames that could not be decoded, by reason), labelled, and in live runs
    sent but never answered."""
    topic: str
    msgtype: str
    listed: int | None          # messages the bag's index or metadata lists (None: unknown)
    read: int
    skipped: dict[str, int]
    labelled: int
    unanswered: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def describe(self) -> str:
        why = ', '.join(f"{n} {r}" for r, n in self.skipped.items())
        text = f"{self.topic}: {self.read}" + (f" of {self.listed}" if self.listed not in (None, self.read) else '')
        text += f" read, {self.skipped_total} skipped" + (f" ({why})" if why else '') + f", {self.labelled} labelled"
        return text + (f", {self.unanswered} not answered" if self.unanswered else '')


def topic_summaries(tallies, results: list[FrameResult]) -> list[TopicSummary]:
    """One TopicSummary per image topic from the reader's tallies (bagio.TopicTally) and the results."""
    out = []
    for t in tallies.values():
        mine = [r for r in results if r.topic == t.topic]
        skipped = dict(t.skipped)
        for r in mine:
            if r.error:
                skipped[r.reason or 'rejected'] = skipped.get(r.reason or 'rejected', 0) + 1
        out.append(TopicSummary(t.topic, t.msgtype, t.expected, t.read, skipped, sum(bool(r.labels) for r in mine),
                                sum(not r.answered for r in mine)))
    return out


def write_jsonl(results: list[FrameResult], path: Path) -> None:
    with open(path, 'w') as f:
        for r in results:
            d = asdict(r)
            d['labels'] = [{'label': t, 'score': round(s, 6)} for t, s in r.labels]
            if r.boxes:         # --objects: each label with its box; whole-frame rows keep their form
                for label, box in zip(d['labels'], r.boxes):
                    label['box'] = [round(v, 1) for v in box]
            del d['boxes']
            f.write(json.dumps(d) + '\n')


def write_csv(results: list[FrameResult], path: Path, k: int) -> None:
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['topic', 'index', 'stamp_ns', 'frame_id', 'answered', 'latency_ms', 'error',
                    *[c for i in range(1, k + 1) for c in (f'label{i}', f'score{i}')]])
        for r in results:
            cells = [c for t, s in r.labels[:k] for c in (t, f"{s:.6f}")]
            cells += [''] * (2 * k - len(cells))
            w.writerow([r.topic, '' if r.index is None else r.index, r.stamp_ns, r.frame_id, int(r.answered),
                        '' if r.latency_ms is None else f"{r.latency_ms:.2f}", r.error or '', *cells])
