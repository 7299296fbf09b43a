"""Frames in, ranked free-text labels out: preprocess -> encode -> decode -> labels.

Scores:
- generate: beam search returns `beam_width` candidate labels per frame; a label's score is its
  sequence probability renormalised over those candidates (duplicates merged). With beam width
  1 there is nothing to renormalise against, and the score is the raw sequence probability.
- prompted: softmax over the given labels of CLIP's scaled image-text similarity.
- hybrid: the decoder's candidates, re-scored by that same CLIP softmax over the candidates.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from collections import OrderedDict
from typing import Sequence

import torch

from ..params import ModelParams
from .clip_encoder import ClipEncoder
from .generation import Sequences, beam_search, greedy
from .label_tokens import LabelVocab
from .preprocess import Preprocessor
from .results import FrameLabels, Label, StageTimings


def read_labels_file(path: str) -> tuple[str, ...]:
    """Labels from a text file (one per line, '#' comments) or a novic-nouns dictionary (.jsonl)."""
    if not path:
        return ()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"labels_file {p} does not exist")
    if p.suffix == '.jsonl':
        return tuple(json.loads(line)['label'] for line in p.read_text().splitlines() if line.strip())
    return tuple(l.strip() for l in p.read_text().splitlines() if l.strip() and not l.lstrip().startswith('#'))


class TextEmbeddingCache:
    """CLIP text embeddings of prompts, computed once. Bounded (LRU) for hybrid mode, where new
    candidate labels keep arriving."""

    def __init__(self, encoder: ClipEncoder, template: str, capacity: int = 20000):
        self.encoder, self.template, self.capacity = encoder, template, capacity
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __call__(self, labels: Sequence[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(l for l in labels if l not in self._cache))
        if missing:
            embs = self.encoder.encode_texts([self.template.format(l) for l in missing])
            for label, e in zip(missing, embs):
                self._cache[label] = e
        for label in labels:
            self._cache.move_to_end(label)
        out = torch.stack([self._cache[l] for l in labels])
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return out


class NovicClassifier:
    def __init__(self, backend, vocab: LabelVocab | None, params: ModelParams, clip: ClipEncoder, model_name: str = ''):
        """`clip` is the open_clip model of the variant: its preprocessing config and logit scale are
        used whatever the backend, and its text tower embeds prompts in prompted and hybrid modes."""
        self.backend = backend
        self.vocab = vocab
        self.params = params
        self.model_name = model_name
        self.preprocess = Preprocessor(clip.preprocess_cfg, backend.device, backend.input_dtype)
        self.max_tokens = params.max_tokens or None
        self.logit_scale = clip.logit_scale
        self.text_cache = TextEmbeddingCache(clip, params.prompt_template) if params.mode != 'generate' else None
        self.prompt_labels = tuple(dict.fromkeys(params.labels + read_labels_file(params.labels_file)))
        if params.mode == 'prompted':
            self._prompt_embs = self.text_cache(self.prompt_labels)

    # --- public API ---

    def classify(self, frames) -> list[FrameLabels]:
        """One HxWx3 uint8 RGB frame or a sequence of them (any sizes) -> one FrameLabels per frame."""
        t0 = time.perf_counter()
        pixels = self.preprocess(frames)
        self._sync()
        t1 = time.perf_counter()
        embeds = self.backend.encode_images(pixels)
        self._sync()
        t2 = time.perf_counter()
        labels = self.labels_for_embeddings(embeds)
        t3 = time.perf_counter()
        timings = StageTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return [FrameLabels(l, timings, len(labels)) for l in labels]

    def labels_for_embeddings(self, embeds: torch.Tensor) -> list[tuple[Label, ...]]:
        """B x E unit CLIP embeddings -> labels per row."""
        if self.params.mode == 'prompted':
            return self._prompted(embeds)
        seqs = self.generate(embeds)
        candidates = self._candidates(seqs)
        if self.params.mode == 'hybrid':
            return [self._rerank(e, c) for e, c in zip(embeds, candidates)]
        return [self._finish(c) for c in candidates]

    def generate(self, embeds: torch.Tensor) -> Sequences:
        if self.params.beam_width == 1:
            return greedy(self.backend.runner, embeds, self.max_tokens)
        return beam_search(self.backend.runner, embeds, self.params.beam_width, self.max_tokens)

    def describe(self) -> str:
        return f"model {self.model_name}, mode {self.params.mode}, backend {self.backend.describe()}"

    # --- scoring ---

    def _sync(self):
        if self.backend.device.type == 'cuda':
            torch.cuda.synchronize(self.backend.device)

    def _candidates(self, seqs: Sequences) -> list[dict[str, float]]:
        """Per frame: label text -> probability (renormalised over the beam when K > 1)."""
        out = []
        for tokens, lps, fin in zip(seqs.tokens.cpu(), seqs.log_probs.cpu(), seqs.finished.cpu()):
            keep = fin if bool(fin.any()) else torch.ones_like(fin)   # prefer labels that ended properly
            texts = [self.vocab.decode(t) for t in tokens]
            valid = [i for i in range(len(texts)) if keep[i] and texts[i]]
            if not valid:
                out.append({})
                continue
            lp = lps[valid].double()
            probs = torch.softmax(lp, 0) if len(tokens) > 1 else lp.exp()
            merged: dict[str, float] = {}
            for i, p in zip(valid, probs.tolist()):
                merged[texts[i]] = merged.get(texts[i], 0.0) + p
            out.append(merged)
        return out

    def _finish(self, scores: dict[str, float]) -> tuple[Label, ...]:
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:self.params.top_k]
        return tuple(Label(t, min(1.0, max(0.0, float(s)))) for t, s in ranked if s >= self.params.min_score)

    def _clip_probs(self, embeds: torch.Tensor, text_embs: torch.Tensor) -> torch.Tensor:
        """B x E image embeddings, N x E text embeddings -> B x N softmax of CLIP's scaled similarity."""
        return torch.softmax(self.logit_scale * embeds.float().cpu() @ text_embs.T, dim=1)

    def _prompted(self, embeds: torch.Tensor) -> list[tuple[Label, ...]]:
        probs = self._clip_probs(embeds, self._prompt_embs)
        return [self._finish(dict(zip(self.prompt_labels, p.tolist()))) for p in probs]

    def _rerank(self, embed: torch.Tensor, candidates: dict[str, float]) -> tuple[Label, ...]:
        if not candidates:
            return ()
        labels = list(candidates)
        probs = self._clip_probs(embed[None], self.text_cache(labels))[0]
        return self._finish(dict(zip(labels, probs.tolist())))
