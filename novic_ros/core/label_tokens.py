"""The decoder's output vocabulary: CLIP's byte-pair encoding, compacted to the tokens a
decoder was trained to emit.

novic_ros's own decoders speak CLIP's BPE (clip_bpe.py, the tokenizer of open_clip's SimpleTokenizer),
whatever image encoder they were trained for; the NOVIC authors' SigLIP checkpoints speak their
embedder's Hugging Face tokenizer (HfLabelVocab). A decoder only ever learns the tokens that occur
in its training nouns, so its softmax runs over that compact set (plus end-of-text) instead
of all 49408 CLIP tokens: same outputs, a smaller and faster logits layer.
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from .clip_bpe import EOT_TOKEN_ID, ClipBPE, byte_decoder, clip_bpe

TOKENIZER_NAME = 'open_clip.SimpleTokenizer'


class LabelVocab:
    """Maps label text <-> compact token indices. Index of end-of-text is `eot`. `bpe_file` is CLIP's
    vocabulary file (default: the one open_clip ships; a bundle carries its own copy). With
    `token_texts` (the BPE unit string of each token, as a bundle stores them) decoding needs no BPE
    file: reading its 49k merges would cost a node a noticeable part of its start."""

    def __init__(self, clip_token_ids: Sequence[int], bpe_file: str | os.PathLike | None = None,
                 token_texts: Sequence[str] | None = None):
        ids = [int(i) for i in clip_token_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("the vocabulary lists a token twice")
        if EOT_TOKEN_ID not in ids:
            raise ValueError("the vocabulary lacks CLIP's end-of-text token")
        if token_texts is not None and len(token_texts) != len(ids):
            raise ValueError(f"{len(token_texts)} token texts for {len(ids)} tokens")
        self._bpe_file = str(bpe_file) if bpe_file else None
        self.clip_ids = np.asarray(ids, dtype=np.int64)
        self._index = {cid: i for i, cid in enumerate(ids)}
        self.eot = self._index[EOT_TOKEN_ID]
        self._texts = list(token_texts) if token_texts is not None else None

    @property
    def bpe(self) -> ClipBPE:
        return clip_bpe(self._bpe_file)

    def token_texts(self) -> list[str]:
        """The BPE unit string of every token, in compact order."""
        if self._texts is None:
            self._texts = [self.bpe.decoder[int(i)] for i in self.clip_ids]
        return self._texts

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
        """Text of compact indices, up to (not including) the first end-of-text (as ClipBPE.decode)."""
        texts, pieces = self.token_texts(), []
        for i in indices:
            i = int(i)
            if i == self.eot:
                break
            pieces.append(texts[i])
        units = byte_decoder()
        text = bytearray(units[c] for c in ''.join(pieces)).decode('utf-8', errors='replace')
        return text.replace('</w>', ' ').strip()


HF_LABEL_TOKENS = 'hf_tokenizers'      # label_vocab.json 'kind' of an HfLabelVocab (core/bundle.py)


class HfLabelVocab:
    """Label text <-> compact indices for a decoder whose targets are a Hugging Face tokenizer's ids
    (the NOVIC authors' SigLIP checkpoints), as the reference spells them: text cleaned as open_clip's
    HFTokenizer cleans it (`clean`), encoded with the tokenizer's special tokens (its end token, which
    is also its pad token, is compact 0), decoded with skip_special_tokens. `token_ids`: compact index ->
    tokenizer id, index 0 the end token. Runs with the `tokenizers` package (no torch, no transformers)."""
    kind = HF_LABEL_TOKENS

    def __init__(self, token_ids: Sequence[int], tokenizer_file: str | os.PathLike, clean: str):
        ids = [int(i) for i in token_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("the vocabulary lists a token twice")
        if not ids:
            raise ValueError("an empty vocabulary")
        from .hf_tokenizer import CLEAN_MODES
        if clean not in CLEAN_MODES:
            raise ValueError(f"unknown clean mode {clean!r}; one of {', '.join(CLEAN_MODES)}")
        try:
            from tokenizers import Tokenizer      # the runtime's requirement (requirements-runtime.txt)
        except ImportError as e:
            raise ImportError("this decoder's labels are spelled by a Hugging Face tokenizer: pip install tokenizers "
                              "(in requirements-runtime.txt)") from e
        self.tokenizer_file = str(tokenizer_file)
        self.clean = clean
        self.token_ids = np.asarray(ids, dtype=np.int64)
        self._index = {t: i for i, t in enumerate(ids)}
        self.eot = 0
        self._tokenizer = Tokenizer.from_file(self.tokenizer_file)
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def __len__(self) -> int:
        return len(self._index)

    def encode(self, label: str) -> list[int]:
        """Compact indices of `label`, ending with the end token. KeyError if a token is not in the vocabulary."""
        from .hf_tokenizer import clean_text
        ids = self._tokenizer.encode(clean_text(label, self.clean), add_special_tokens=True).ids
        out = [self._index[t] for t in ids]
        return out if out and out[-1] == self.eot else out + [self.eot]

    def decode(self, indices: Iterable[int]) -> str:
        """Text of compact indices up to (not including) the first end token."""
        ids = []
        for i in indices:
            i = int(i)
            if i == self.eot:
                break
            ids.append(int(self.token_ids[i]))
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def to_json(self, tokenizer_name: str) -> dict:
        """label_vocab.json for a bundle that carries the tokenizer file as `tokenizer_name`."""
        return {'kind': self.kind, 'token_ids': self.token_ids.tolist(), 'tokenizer_file': tokenizer_name,
                'clean': self.clean}
