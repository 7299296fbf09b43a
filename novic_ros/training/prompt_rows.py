"""The rows of a training set, built on demand instead of held in memory.

Row r is a prompt about noun r // per_noun (noun-major order), drawn by a generator seeded by
the noun, so any range of rows (an embedding shard, one rank's share) is rebuilt alone in the
same way by every process. Millions of prompt strings never sit in memory together; the
training order is random anyway (the trainer samples rows).
"""
from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np

from .prompts import PromptGenerator


class Rows(Protocol):
    """What the embedding store needs: a length, a content hash, and texts by range."""
    fingerprint: str

    def __len__(self) -> int: ...

    def texts(self, start: int, stop: int) -> list[str]: ...


class PromptRows:
    """`per_noun` prompts for every noun of `generator`."""

    def __init__(self, generator: PromptGenerator, per_noun: int):
        self.generator = generator
        self.per_noun = per_noun
        self.fingerprint = hashlib.sha256(f"{generator.fingerprint()}x{per_noun}".encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.generator.nouns) * self.per_noun

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """The noun index of each row."""
        return rows // self.per_noun

    def texts(self, start: int, stop: int) -> list[str]:
        first, last = start // self.per_noun, (stop - 1) // self.per_noun
        out = [p.text for n in range(first, last + 1) for p in self.generator.noun_prompts(n, self.per_noun)]
        offset = first * self.per_noun
        return out[start - offset:stop - offset]
