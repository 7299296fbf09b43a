"""CLIP's byte-pair encoding without torch: the tokenizer of OpenAI CLIP as open_clip's
SimpleTokenizer implements it (clean 'lower', truncation at the context length), over the same
vocabulary file (bpe_simple_vocab_16e6.txt.gz).

Why not open_clip's class: its module imports torch, and the runtime (a robot running exported
graphs) has none. The algorithm below is OpenAI's (MIT licence, Copyright (c) 2021 OpenAI, as
copied into open_clip); test_clip_bpe.py checks that it gives open_clip's ids on the whole noun
dictionary, prompts, unicode and long text.
"""
from __future__ import annotations

import gzip
import html
import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import ftfy
import numpy as np
import regex

VOCAB_FILE = 'bpe_simple_vocab_16e6.txt.gz'
CONTEXT_LENGTH = 77
_MERGES = 49152 - 256 - 2       # merges of CLIP's 49408-token vocabulary
_SPECIAL = ('<start_of_text>', '<end_of_text>')
EOT_TOKEN_ID = 49407            # <end_of_text>: the last id of CLIP's vocabulary


def open_clip_vocab_file() -> Path:
    """The vocabulary file shipped inside the installed open_clip package, found without importing
    it (importing open_clip imports torch). FileNotFoundError where open_clip is not installed."""
    spec = importlib.util.find_spec('open_clip')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"CLIP's BPE vocabulary ({VOCAB_FILE}) comes with open_clip, which is not installed; "
                                "a runtime install reads it from the exported bundle instead")
    return Path(list(spec.submodule_search_locations)[0]) / VOCAB_FILE


@lru_cache()
def _bytes_to_unicode() -> dict[int, str]:
    """Reversible map of utf-8 bytes to printable unicode characters (so BPE never sees whitespace
    or control characters)."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@lru_cache()
def byte_decoder() -> dict[str, int]:
    return {v: k for k, v in _bytes_to_unicode().items()}


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(zip(word, word[1:]))


def clean(text: str) -> str:
    """open_clip's 'lower' cleaning: ftfy, HTML entities twice, collapsed whitespace, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return ' '.join(text.split()).strip().lower()


class ClipBPE:
    """encode/decode between text and CLIP token ids; `tokenize` builds the text tower's input."""

    def __init__(self, vocab_file: str | os.PathLike | None = None, context_length: int = CONTEXT_LENGTH):
        self.vocab_file = Path(vocab_file) if vocab_file else open_clip_vocab_file()
        try:
            lines = gzip.open(self.vocab_file).read().decode('utf-8').split('\n')
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read CLIP's BPE vocabulary {self.vocab_file}: {e}") from e
        merges = [tuple(m.split()) for m in lines[1:_MERGES + 1]]
        if len(merges) != _MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{self.vocab_file} is not CLIP's BPE vocabulary (expected {_MERGES} merges)")
        self.byte_encoder = _bytes_to_unicode()
        self.byte_decoder = byte_decoder()
        units = list(self.byte_encoder.values())
        vocab = units + [u + '</w>' for u in units] + [''.join(m) for m in merges] + list(_SPECIAL)
        self.encoder = {t: i for i, t in enumerate(vocab)}
        self.decoder = dict(enumerate(vocab))
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {t: t for t in _SPECIAL}
        self.pat = regex.compile('|'.join(_SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                                 regex.IGNORECASE)
        self.sot_token_id, self.eot_token_id = self.encoder[_SPECIAL[0]], self.encoder[_SPECIAL[1]]
        self.vocab_size = len(vocab)
        self.context_length = context_length

    def _bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        pairs = _pairs(word)
        if not pairs:
            return token + '</w>'
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float('inf')))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        out = ' '.join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        ids = []
        for token in regex.findall(self.pat, clean(text)):
            token = ''.join(self.byte_encoder[b] for b in token.encode('utf-8'))
            ids.extend(self.encoder[t] for t in self._bpe(token).split(' '))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        text = ''.join(self.decoder[int(i)] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode('utf-8', errors='replace').replace('</w>', ' ')

    def tokenize(self, texts: Sequence[str], context_length: int | None = None) -> np.ndarray:
        """N texts -> N x context_length int64 ids: start-of-text, the text, end-of-text, zero padding;
        a text too long is cut and ends with end-of-text (as open_clip does)."""
        length = context_length or self.context_length
        out = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in zip(out, texts):
            ids = [self.sot_token_id] + self.encode(text) + [self.eot_token_id]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = self.eot_token_id
            row[:len(ids)] = ids
        return out


@lru_cache(maxsize=4)
def clip_bpe(vocab_file: str | None = None) -> ClipBPE:
    """One shared tokenizer per vocabulary file (building one reads 49k merges: about 0.1 s)."""
    return ClipBPE(vocab_file)
