"""Unit CLIP image embeddings -> labels, for every mode: the one labelling path of whole frames
(NovicClassifier) and of the windows of the multi-object mode (ObjectFinder).

Two readouts of the same primitives (the decoder's candidates, CLIP's softmax over label prompts,
CLIP's cosine check):
- `frame_labels`: ranked labels per embedding, at most top_k, none below min_score.
  generate: the beam's candidates, sequence probabilities renormalised over the beam (duplicates
  merged; with beam width 1 the raw sequence probability). prompted: softmax over the label list
  of CLIP's scaled image-text similarity. hybrid: the decoder's candidates re-scored by that softmax.
- `window_labels`: one label and score per embedding ('' where there is none).
  generate: the greedy decoder's finished label, scored by its raw sequence probability (a window
  on background scores low). hybrid: CLIP picks among the finished beam candidates; the score
  stays the decoder's. prompted: the best of the label list and its softmax probability.
- `similarities`: the cosine of each embedding with its label's prompt (the CLIP check).

An EmbeddingLabeller never changes: its options are the classifier's. Arrays are numpy.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .frame_labels import Label
from .generation import Sequences, beam_search, greedy
from .label_tokens import LabelVocab
from .novic_decoding import AUTO, NovicDecoding, is_guided_name
from .options import ClassifierOptions
from .text_cache import TextEmbeddingCache


class EmbeddingLabeller:
    def __init__(self, runner, vocab: LabelVocab | None, options: ClassifierOptions, logit_scale: float,
                 text_cache: TextEmbeddingCache | None, novic: NovicDecoding | None = None):
        """`runner` and `vocab` are the decoder's (None without one: prompted mode only); `text_cache`
        embeds label prompts (None without CLIP's text encoder: generate mode only); `novic`: the decoder
        is a NOVIC checkpoint's, decoded as the reference does (core/novic_decoding.py)."""
        # A max_tokens the table allows can still exceed what this decoder spells: refused when the settings
        # are built (the change fails whole, the old settings stay), not by every batch afterwards.
        if runner is not None and options.max_tokens and options.max_tokens > runner.max_tokens:
            raise ValueError(f"max_tokens {options.max_tokens} exceeds this decoder's {runner.max_tokens} tokens "
                             "per label: use 0 (the decoder's own maximum) or a value up to it")
        if options.generation != AUTO and novic is None and runner is not None:
            raise ValueError(f"generation {options.generation!r} is a NOVIC reference configuration, for the NOVIC "
                             "authors' checkpoints; this decoder is novic_ros's own: use generation auto "
                             "(beam_width and max_tokens set its search)")
        self.runner = runner
        self.vocab = vocab
        self.novic = novic if runner is not None else None
        self._novic_cfg = self._novic_guide = None
        if self.novic is not None:
            self._novic_cfg = self.novic.config(options.generation)
            if options.mode == 'generate' and options.labels and is_guided_name(options.generation):
                self._novic_guide = self.novic.guide_for(vocab, options.labels)
        self.options = options
        self.logit_scale = logit_scale
        self.text_cache = text_cache
        # Computed now, not on the first frame: swapping in a prompted classifier never leaves frames
        # waiting for the label embeddings.
        self._prompt_embs = text_cache(options.labels) if options.mode == 'prompted' else None

    @property
    def embeds_text(self) -> bool:
        """Whether labels can be checked against CLIP's text encoder (similarities)."""
        return self.text_cache is not None

    # --- primitives ---

    def generate(self, embeds: np.ndarray, beam_width: int | None = None) -> Sequences:
        """The decoder's sequences: greedy for beam width 1, else beam search (default: the options')."""
        width = self.options.beam_width if beam_width is None else beam_width
        if self.novic is not None:        # the reference's search; beam width 1 asks for its greedy form
            cfg = self._novic_cfg if beam_width is None or beam_width > 1 else self.novic.greedy_of(self._novic_cfg)
            return self.novic.generate(self.runner, embeds, cfg, self._novic_guide)
        max_tokens = self.options.max_tokens or None
        if width == 1:
            return greedy(self.runner, embeds, max_tokens)
        return beam_search(self.runner, embeds, width, max_tokens)

    def clip_probs(self, embeds: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """B x E image embeddings -> B x N softmax over `labels` of CLIP's scaled image-text similarity."""
        return self._probs(embeds, self.text_cache(list(labels)))

    def _probs(self, embeds: np.ndarray, text: np.ndarray) -> np.ndarray:
        return _softmax(self.logit_scale * (np.asarray(embeds, np.float32) @ np.asarray(text, np.float32).T), axis=1)

    def similarities(self, embeds: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each embedding with its label's prompt; 0 where the label is ''."""
        names = sorted({l for l in labels if l})
        if not names:
            return np.zeros(len(labels))
        text = np.asarray(self.text_cache(names), np.float32)
        row = {n: i for i, n in enumerate(names)}
        sims = np.einsum('ne,ne->n', np.asarray(embeds, np.float32), text[[row.get(l, 0) for l in labels]])
        return np.where([bool(l) for l in labels], sims, 0.0)

    def _texts(self, seqs: Sequences):
        """Per row: (label text, sequence log-probability, finished) of each candidate, best first."""
        for tokens, lps, fin in zip(seqs.tokens, seqs.log_probs, seqs.finished):
            yield [(self.vocab.decode(t), float(lp), bool(f)) for t, lp, f in zip(tokens, lps, fin)]

    # --- whole frames: ranked labels ---

    def frame_labels(self, embeds: np.ndarray) -> list[tuple[Label, ...]]:
        """B x E unit CLIP embeddings -> ranked labels per row (module docstring)."""
        mode = self.options.mode
        if mode == 'prompted':
            probs = self._probs(embeds, self._prompt_embs)
            return [self._finish(dict(zip(self.options.labels, p.tolist()))) for p in probs]
        candidates = self.candidates(self.generate(embeds))
        if mode == 'hybrid':
            return [self._rerank(e, c) for e, c in zip(embeds, candidates)]
        return [self._finish(c) for c in candidates]

    def candidates(self, seqs: Sequences) -> list[dict[str, float]]:
        """Per frame: label text -> probability (renormalised over the beam when it has several; a NOVIC
        checkpoint's: the reference's raw sequence probability, each label's best candidate)."""
        if self.novic is not None:
            return [_first_of_each(cands) for cands in self._texts(seqs)]
        out = []
        for cands in self._texts(seqs):
            any_finished = any(f for _, _, f in cands)          # prefer labels that ended properly
            valid = [(t, lp) for t, lp, f in cands if t and (f or not any_finished)]
            if not valid:
                out.append({})
                continue
            lp = np.array([v[1] for v in valid], np.float64)
            probs = _softmax(lp) if len(cands) > 1 else np.exp(lp)
            merged: dict[str, float] = {}
            for (text, _), p in zip(valid, probs.tolist()):
                merged[text] = merged.get(text, 0.0) + p
            out.append(merged)
        return out

    def _rerank(self, embed: np.ndarray, candidates: dict[str, float]) -> tuple[Label, ...]:
        if not candidates:
            return ()
        labels = list(candidates)
        return self._finish(dict(zip(labels, self.clip_probs(embed[None], labels)[0].tolist())))

    def _finish(self, scores: dict[str, float]) -> tuple[Label, ...]:
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:self.options.top_k]
        return tuple(Label(t, min(1.0, max(0.0, float(s)))) for t, s in ranked if s >= self.options.min_score)

    # --- windows: one label each ---

    def window_labels(self, embeds: np.ndarray, max_batch: int | None = None) -> tuple[list[str], np.ndarray]:
        """N x E window embeddings -> one label ('' for none) and score per window (module docstring);
        at most `max_batch` rows per decoder call."""
        if self.options.mode == 'prompted':
            probs = self._probs(embeds, self._prompt_embs)
            best = probs.argmax(axis=1)
            return [self.options.labels[i] for i in best], probs[np.arange(len(best)), best].astype(np.float64)
        labels: list[str] = []
        scores: list[float] = []
        pick = self._greedy_label if self.options.mode == 'generate' else self._clip_pick
        width = 1 if self.options.mode == 'generate' else self.options.beam_width
        step = max_batch or len(embeds) or 1
        for i in range(0, len(embeds), step):
            chunk = embeds[i:i + step]
            for embed, cands in zip(chunk, self._texts(self.generate(chunk, width))):
                label, score = pick(embed, cands)
                labels.append(label)
                scores.append(score)
        return labels, np.array(scores, np.float64)

    @staticmethod
    def _greedy_label(embed, cands) -> tuple[str, float]:
        text, lp, finished = cands[0]
        return (text, float(np.exp(lp))) if finished else ('', float(np.exp(lp)))

    def _clip_pick(self, embed, cands) -> tuple[str, float]:
        best: dict[str, float] = {}
        for text, lp, finished in cands:
            if finished and text and text not in best:          # beams are best first: each label's best
                best[text] = float(np.exp(lp))
        if not best:
            return '', 0.0
        names = list(best)
        choice = names[int(self.clip_probs(embed[None], names)[0].argmax())]
        return choice, best[choice]


def _first_of_each(cands) -> dict[str, float]:
    """label -> probability of its first (best) candidate, in beam order (ties keep the reference's order)."""
    out: dict[str, float] = {}
    for text, lp, _ in cands:
        if text and text not in out:
            out[text] = float(np.exp(lp))
    return out


def batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, max_batch: int | None) -> np.ndarray:
    """fn over the rows of x, at most `max_batch` rows per call (None: all at once)."""
    if max_batch is None or len(x) <= max_batch:
        return fn(x)
    return np.concatenate([fn(x[i:i + max_batch]) for i in range(0, len(x), max_batch)])


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
