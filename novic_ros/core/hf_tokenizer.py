"""A Hugging Face fast tokenizer without torch or transformers: the tokenizer.json that
transformers' fast tokenizers are built on, run with the `tokenizers` package, wrapped the way
open_clip's HFTokenizer calls it (SigLIP's text tower and other Hugging Face tokenizers): the same
text cleaning, truncation to the context length with the end token kept, right padding with the
pad id, optional replacement of the separator token by 0.

Why not open_clip's class: it imports torch and transformers, and a robot running an exported
bundle has neither. novic-export checks that this class gives open_clip's ids on probe texts
before it puts a text encoder in a bundle (backends/onnx_export.py), so a difference is found
where torch is, not on the robot.
"""
from __future__ import annotations

import html
import os
import string
from pathlib import Path
from typing import Sequence

import ftfy
import numpy as np

NAME = 'hf_tokenizers'            # the bundle's tokenizer name for this kind (core/bundle.py)
CLEAN_MODES = ('whitespace', 'lower', 'canonicalize')
_PUNCTUATION = str.maketrans('', '', string.punctuation)


def basic_clean(text: str) -> str:
    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def whitespace_clean(text: str) -> str:
    return ' '.join(text.split()).strip()


def clean_text(text: str, mode: str) -> str:
    """open_clip's cleaning functions (tokenizer.get_clean_fn): 'whitespace', 'lower', or
    'canonicalize' (SigLIP: underscores to spaces, punctuation removed, lower case)."""
    if mode == 'whitespace':
        return whitespace_clean(basic_clean(text))
    if mode == 'lower':
        return whitespace_clean(basic_clean(text)).lower()
    if mode == 'canonicalize':
        text = basic_clean(text).replace('_', ' ').translate(_PUNCTUATION).lower()
        return ' '.join(text.split()).strip()
    raise ValueError(f"unknown clean mode {mode!r}; one of {', '.join(CLEAN_MODES)}")


class HFTextTokenizer:
    """Text -> token ids as open_clip's HFTokenizer gives them, from a tokenizer.json file."""

    def __init__(self, tokenizer_file: str | os.PathLike, context_length: int, pad_id: int, clean: str = 'whitespace',
                 strip_sep_token: bool = False, sep_id: int | None = None):
        try:
            from tokenizers import Tokenizer      # the runtime's requirement, needed only for prompts of such models
        except ImportError as e:
            raise ImportError("this model's tokenizer runs with the `tokenizers` package (pip install -r "
                              "requirements-runtime.txt)") from e
        if clean not in CLEAN_MODES:
            raise ValueError(f"unknown clean mode {clean!r}; one of {', '.join(CLEAN_MODES)}")
        if strip_sep_token and sep_id is None:
            raise ValueError("strip_sep_token needs the separator's id")
        self.file = Path(tokenizer_file)
        self.tokenizer = Tokenizer.from_file(str(self.file))
        self.tokenizer.no_padding()      # padding and truncation are ours: open_clip pads to the context length
        self.tokenizer.no_truncation()
        self.context_length, self.pad_id, self.clean = int(context_length), int(pad_id), clean
        self.strip_sep_token, self.sep_id = strip_sep_token, sep_id
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)

    def tokenize(self, texts: Sequence[str], context_length: int | None = None) -> np.ndarray:
        """N texts -> N x context_length int64 ids (transformers' padding='max_length', truncation=True)."""
        length = int(context_length or self.context_length)
        self.tokenizer.enable_truncation(max_length=length)    # keeps the post-processor's special tokens
        try:
            encodings = self.tokenizer.encode_batch([clean_text(t, self.clean) for t in texts], add_special_tokens=True)
        finally:
            self.tokenizer.no_truncation()
        out = np.full((len(texts), length), self.pad_id, dtype=np.int64)
        for row, enc in zip(out, encodings):
            ids = enc.ids[:length]
            row[:len(ids)] = ids
        if self.strip_sep_token:
            out[out == self.sep_id] = 0
        return out

    def encode(self, text: str) -> list[int]:
        """The ids of `text` after cleaning, without special tokens."""
        return self.tokenizer.encode(clean_text(text, self.clean), add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def describe(self) -> dict:
        """The fields a bundle records (core/bundle.py TokenizerInfo.options)."""
        return {'clean': self.clean, 'pad_id': self.pad_id, 'strip_sep_token': self.strip_sep_token,
                'sep_id': self.sep_id}
