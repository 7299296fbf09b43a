"""The composition root: parameters -> model variant -> CLIP encoder + decoder -> backend ->
classifier, and the one loop that feeds it (decode, reject, batch, zip back).

It sits above novic_ros.core (ROS-free inference) and novic_ros.backends, which know nothing of
each other's construction; the node, the CLIs, evaluation and the benchmarks build classifiers
here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import numpy as np

from .core.errors import FrameError
from .core.results import FrameLabels

T = TypeVar('T')


@dataclass(frozen=True)
class Classified(Generic[T]):
    """One input and what became of it: labels, or the error that rejected it."""
    item: T
    frame: np.ndarray | None = None        # the decoded RGB frame (None when rejected)
    labels: FrameLabels | None = None
    error: FrameError | None = None


def classify_in_batches(classifier, items: Iterable[T], to_frame: Callable[[T], np.ndarray],
                        batch_size: int) -> Iterator[Classified[T]]:
    """Every item, in input order, with its labels or with the FrameError that kept it from being
    classified. `to_frame` turns an item (a message, a bag record, a path) into an HxWx3 uint8 RGB
    frame and raises FrameError for one that cannot be used: that item alone is rejected. Frames are
    classified `batch_size` at a time; a result's timings are its batch's (FrameLabels.per_frame_ms)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pending: list[Classified[T]] = []
    frames = 0
    for item in items:
        try:
            pending.append(Classified(item, frame=to_frame(item)))
            frames += 1
        except FrameError as e:
            pending.append(Classified(item, error=e))
        if frames == batch_size:
            yield from _classify(classifier, pending)
            pending, frames = [], 0
    if pending:
        yield from _classify(classifier, pending)


def _classify(classifier, pending: list[Classified[T]]) -> Iterator[Classified[T]]:
    frames = [c.frame for c in pending if c.error is None]
    labels = iter(classifier.classify(frames) if frames else ())
    for c in pending:
        yield c if c.error is not None else Classified(c.item, c.frame, next(labels))
