"""Frames in, ranked free-text labels out: preprocess -> encode -> decode -> labels.

Scores:
- generate: beam search returns `beam_width` candidate labels per frame; a label's score is its
  sequence probability renormalised over those candidates (duplicates merged). With beam width
  1 there is nothing to renormalise against, and the score is the raw sequence probability.
- prompted: softmax over the given labels of CLIP's scaled image-text similarity.
- hybrid: the decoder's candidates, re-scored by that same CLIP softmax over the candidates.

A classifier's options never change. New settings make a new classifier (`with_options`) that
shares the loaded models and cached text embeddings; the caller swaps it in between frames.
"""
from __future__ import annotations

import time

import numpy as np

from .clip_properties import ClipFacts
from .errors import ModelLoadError
from .generation import Sequences, beam_search, greedy
from .label_tokens import LabelVocab
from .options import ClassifierOptions
from .preprocess import Preprocessor
from .frame_labels import FrameLabels, Label, StageTimings
from .text_cache import TextEmbeddingCache

NOT_LOADED = "it was not loaded (prompted mode needs none); start with the new mode"


class NovicClassifier:
    def __init__(self, backend, vocab: LabelVocab | None, options: ClassifierOptions, clip: ClipFacts,
                 model_name: str = '', *, text_cache: TextEmbeddingCache | None = None,
                 missing_decoder: str = NOT_LOADED):
        """`clip` describes the variant's CLIP model (preprocessing, logit scale) whatever the backend;
        the backend's text encoder embeds prompts in prompted and hybrid modes. Arrays are numpy.
        `missing_decoder` says why there is no decoder (`vocab` None), for the refusal of other modes."""
        if vocab is None and options.mode != 'prompted':
            raise ValueError(f"mode {options.mode!r} needs the decoder; {missing_decoder}")
        self.backend = backend
        self.vocab = vocab
        self.options = options
        self.clip = clip
        self.model_name = model_name
        self.missing_decoder = missing_decoder
        self.preprocess = Preprocessor(clip.preprocess)
        self.logit_scale = clip.logit_scale
        if text_cache is None and options.mode != 'generate':
            text_cache = TextEmbeddingCache(self._text_encoder(options.mode), options.prompt_template)
        elif text_cache is not None and text_cache.template != options.prompt_template:
            text_cache = text_cache.for_template(options.prompt_template)
        self.text_cache = text_cache
        # Computed here, before the classifier is used: swapping in a prompted classifier never
        # leaves frames waiting for the label embeddings.
        self._prompt_embs = self.text_cache(options.labels) if options.mode == 'prompted' else None

    def _text_encoder(self, mode: str):
        encoder = self.backend.text_encoder
        if encoder is None:
            raise ModelLoadError(f"mode {mode!r} embeds label prompts with CLIP's text encoder, which "
                                 f"{self.backend.describe()} does not have for model {self.model_name}; "
                                 "use mode 'generate', or export the model again with novic-export")
        return encoder

    def with_options(self, options: ClassifierOptions) -> 'NovicClassifier':
        """A classifier with other settings over the same models (this one stays as it is)."""
        return NovicClassifier(self.backend, self.vocab, options, self.clip, self.model_name, text_cache=self.text_cache,
                               missing_decoder=self.missing_decoder)

    @property
    def prompt_labels(self) -> tuple[str, ...]:
        return self.options.labels if self.options.mode == 'prompted' else ()

    # --- public API ---

    def classify(self, frames) -> list[FrameLabels]:
        """One HxWx3 uint8 RGB frame or a sequence of them (any sizes) -> one FrameLabels per frame."""
        t0 = time.perf_counter()
        pixels = self.preprocess(frames)
        t1 = time.perf_counter()
        embeds = self.backend.encode_images(pixels)
        t2 = time.perf_counter()
        labels = self.labels_for_embeddings(embeds)
        t3 = time.perf_counter()
        timings = StageTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return [FrameLabels(l, timings, len(labels)) for l in labels]

    def labels_for_embeddings(self, embeds: np.ndarray) -> list[tuple[Label, ...]]:
        """B x E unit CLIP embeddings -> labels per row."""
        if self.options.mode == 'prompted':
            return self._prompted(embeds)
        candidates = self._candidates(self.generate(embeds))
        if self.options.mode == 'hybrid':
            return [self._rerank(e, c) for e, c in zip(embeds, candidates)]
        return [self._finish(c) for c in candidates]

    def generate(self, embeds: np.ndarray) -> Sequences:
        max_tokens = self.options.max_tokens or None
        if self.options.beam_width == 1:
            return greedy(self.backend.runner, embeds, max_tokens)
        return beam_search(self.backend.runner, embeds, self.options.beam_width, max_tokens)

    def describe(self) -> str:
        return f"model {self.model_name}, mode {self.options.mode}, backend {self.backend.describe()}"

    # --- scoring ---

    def _candidates(self, seqs: Sequences) -> list[dict[str, float]]:
        """Per frame: label text -> probability (renormalised over the beam when K > 1)."""
        out = []
        for tokens, lps, fin in zip(seqs.tokens, seqs.log_probs, seqs.finished):
            keep = fin if fin.any() else np.ones_like(fin)          # prefer labels that ended properly
            texts = [self.vocab.decode(t) for t in tokens]
            valid = [i for i in range(len(texts)) if keep[i] and texts[i]]
            if not valid:
                out.append({})
                continue
            lp = lps[valid].astype(np.float64)
            probs = _softmax(lp) if len(tokens) > 1 else np.exp(lp)
            merged: dict[str, float] = {}
            for i, p in zip(valid, probs.tolist()):
                merged[texts[i]] = merged.get(texts[i], 0.0) + p
            out.append(merged)
        return out

    def _finish(self, scores: dict[str, float]) -> tuple[Label, ...]:
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:self.options.top_k]
        return tuple(Label(t, min(1.0, max(0.0, float(s)))) for t, s in ranked if s >= self.options.min_score)

    def _clip_probs(self, embeds: np.ndarray, text_embs: np.ndarray) -> np.ndarray:
        """B x E image embeddings, N x E text embeddings -> B x N softmax of CLIP's scaled similarity."""
        return _softmax(self.logit_scale * (np.asarray(embeds, np.float32) @ text_embs.T), axis=1)

    def _prompted(self, embeds: np.ndarray) -> list[tuple[Label, ...]]:
        probs = self._clip_probs(embeds, self._prompt_embs)
        return [self._finish(dict(zip(self.options.labels, p.tolist()))) for p in probs]

    def _rerank(self, embed: np.ndarray, candidates: dict[str, float]) -> tuple[Label, ...]:
        if not candidates:
            return ()
        labels = list(candidates)
        probs = self._clip_probs(embed[None], self.text_cache(labels))[0]
        return self._finish(dict(zip(labels, probs.tolist())))


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
