"""CLIP text embeddings of training prompts, cached on disk.

The text tower is the training bottleneck, so embeddings are computed once per (model, data)
pair and stored as fp16 shards under a folder keyed by both. Shards are written atomically;
an interrupted run resumes at the first missing shard.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..atomic_file import atomic_write

log = logging.getLogger(__name__)

SHARD = 8192      # prompts per shard: small enough to lose little on Ctrl-C


def data_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b'\0')
    return h.hexdigest()[:16]


class TextEmbeddingStore:
    """Embeddings of `texts` by `encoder` (a ClipEncoder), under root/<model key>-<data hash>/."""

    def __init__(self, root: str | os.PathLike, model_key: str, texts: Sequence[str]):
        self.texts = list(texts)
        self.dir = Path(root) / f"{model_key}-{data_hash(self.texts)}"
        self.num_shards = (len(self.texts) + SHARD - 1) // SHARD

    def _shard(self, i: int) -> Path:
        return self.dir / f"shard{i:05d}.npy"

    def missing(self) -> list[int]:
        return [i for i in range(self.num_shards) if not self._shard(i).is_file()]

    def compute(self, encoder, batch_size: int = 256, progress: bool = True) -> None:
        todo = self.missing()
        if not todo:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / 'info.json').write_text(json.dumps({'count': len(self.texts), 'shard': SHARD,
                                                        'model': encoder.spec.describe()}))
        remaining = sum(min(SHARD, len(self.texts) - i * SHARD) for i in todo)
        with tqdm(total=remaining, desc='text embeddings', unit='prompt', disable=not progress,
                  mininterval=2) as bar:
            for i in todo:
                chunk = self.texts[i * SHARD:(i + 1) * SHARD]
                # The whole shard at once: sorted by length across 8192 prompts, batches trim best.
                embs = encoder.encode_texts(chunk, batch_size, on_batch=bar.update).numpy().astype(np.float16)
                buf = io.BytesIO()
                np.save(buf, embs)
                atomic_write(self._shard(i), buf.getvalue())

    def load(self) -> torch.Tensor:
        """All embeddings as one N x E float16 tensor (call compute first)."""
        missing = self.missing()
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {self.num_shards} shards missing in {self.dir}; run compute()")
        return torch.from_numpy(np.concatenate([np.load(self._shard(i)) for i in range(self.num_shards)]))
