"""CLIP text embeddings of prompts, computed once per label and template."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

import torch

from .clip_encoder import ClipEncoder


class TextEmbeddingCache:
    """Unit text embeddings of `template.format(label)`. Bounded (LRU) for hybrid mode, where new
    candidate labels keep arriving. Thread-safe: a classifier being built for new settings fills it
    while the current one reads it; the text tower runs outside the lock, so a long label list being
    embedded never blocks the frames being classified."""

    def __init__(self, encoder: ClipEncoder, template: str, capacity: int = 20000):
        self.encoder, self.template, self.capacity = encoder, template, capacity
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, labels: Sequence[str]) -> torch.Tensor:
        """len(labels) x E embeddings, in the order of `labels`."""
        with self._lock:
            found = {l: self._cache[l] for l in labels if l in self._cache}
        missing = list(dict.fromkeys(l for l in labels if l not in found))
        if missing:
            embs = self.encoder.encode_texts([self.template.format(l) for l in missing])
            found.update(zip(missing, embs))
        with self._lock:
            for label in labels:
                self._cache[label] = found[label]
                self._cache.move_to_end(label)
            while len(self._cache) > max(self.capacity, len(labels)):
                self._cache.popitem(last=False)
        return torch.stack([found[l] for l in labels])
