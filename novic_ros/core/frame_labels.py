"""Typed, frozen results of classification."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    text: str
    score: float          # probability in [0, 1]; see NovicClassifier for what it is normalised over


@dataclass(frozen=True)
class StageTimings:
    """Wall time of each stage for the batch a frame was classified in (milliseconds)."""
    preprocess_ms: float = 0.0
    encode_ms: float = 0.0
    decode_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.encode_ms + self.decode_ms


@dataclass(frozen=True)
class FrameLabels:
    labels: tuple[Label, ...]          # best first, at most top_k, all with score >= min_score
    timings: StageTimings = StageTimings()
    batch_size: int = 1

    @property
    def per_frame_ms(self) -> float:
        """This frame's share of its batch's inference time."""
        return self.timings.total_ms / max(1, self.batch_size)

    @property
    def top(self) -> Label | None:
        return self.labels[0] if self.labels else None

    def to_json(self) -> list[dict]:
        return [{'label': l.text, 'score': round(l.score, 6)} for l in self.labels]
