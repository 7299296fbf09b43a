"""The decoder's output vocabulary: CLIP's byte-pair encoding, compacted to the tokens a
decoder was trained to emit.

Every decoder speaks CLIP's BPE (clip_bpe.py, the tokenizer of open_clip's SimpleTokenizer),
whatever image encoder it was trained for. A decoder only ever learns the tokens that occur
in its training nouns, so its softmax runs over that compact set (plus end-of-text) instead
of all 49408 CLIP tokens: same outputs, a smaller and faster logits layer.
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from .clip_bpe import ClipBPE, clip_bpe

TOKENIZER_NAME = 'open_clip.SimpleTokenizer'


class LabelVocab:
    """Maps label text <-> compact token indices. Index of end-of-text is `eot`. `bpe_file` is CLIP's
    vocabulary file (default: the one open_clip ships; a bundle carries its own copy)."""

    def __init__(self, clip_token_ids: Sequence[int], bpe_file: str | os.PathLike | None = None):
        ids = [int(i) for i in clip_token_ids]
        self.bpe: ClipBPE = clip_bpe(str(bpe_file) if bpe_file else None)
        if len(set(ids)) != len(ids):
            raise ValueError("the vocabulary lists a token twice")
        if self.bpe.eot_token_id not in ids:
            raise ValueError("the vocabulary lacks CLIP's end-of-text token")
        self.clip_ids = np.asarray(ids, dtype=np.int64)
        self._index = {cid: i for i, cid in enumerate(ids)}
        self.eot = self._index[self.bpe.eot_token_id]

    def __len__(self) -> int:
        return len(self._index)

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> 'LabelVocab':
        """The smallest vocabulary that spells every label, sorted by CLIP token id."""
        bpe = clip_bpe()
        ids = {bpe.eot_token_id}
        for label in labels:
            ids.update(bpe.encode(label))
        return cls(sorted(ids))

    def encode(self, label: str) -> list[int]:
        """Compact indices of `label`, followed by end-of-text. KeyError if a token is not in the vocabulary."""
        return [self._index[t] for t in self.bpe.encode(label)] + [self.eot]

    def decode(self, indices: Iterable[int]) -> str:
        """Text of compact indices, up to (not including) the first end-of-text."""
        clip_ids = []
        for i in indices:
            i = int(i)
            if i == self.eot:
                break
            clip_ids.append(int(self.clip_ids[i]))
        return self.bpe.decode(clip_ids).strip()
