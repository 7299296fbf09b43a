"""How a NOVIC authors' decoder names things in the classifier: its generation configuration
(novic_generation.py) over the nouns it was trained on, as Sequences the labelling path reads.

A NOVIC checkpoint's decoder is run the way the reference runs it, not with our own beam search:
the configuration `generation` names (default: the reference's `beam_k10_vnone_gp_t1_a0`, guided to
the checkpoint's nouns), each label scored by its raw sequence probability exp(score) (not
renormalised over the beam), labels in the reference's order. A guided configuration named
explicitly may be guided to a label list instead (ClassifierOptions.labels in generate mode).
Torch-free: the targets come from the checkpoint (torch) or from a bundle's novic_targets.npy.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .generation import Sequences
from .label_tokens import LabelVocab
from .novic_generation import DEFAULT_GENCFG, NovicGenConfig, novic_generate, target_matrix

log = logging.getLogger(__name__)
AUTO = 'auto'


def is_guided_name(name: str) -> bool:
    """Whether a (valid) generation value names a guided reference configuration (its g part is p or r)."""
    return name != AUTO and NovicGenConfig.from_name(name).guided


def check_generation(name: str) -> None:
    """ValueError naming the bad part of a `generation` value (auto or a reference configuration)."""
    if name != AUTO:
        NovicGenConfig.from_name(name)


def spell_targets(vocab, labels, token_length: int) -> tuple[tuple[str, ...], np.ndarray]:
    """(labels kept, W x token_length compact ids) of a guide list, in its order and as given (a caller's
    list is deduplicated by the caller; a checkpoint's vocabulary is taken as the reference takes it):
    labels the vocabulary cannot spell, or longer than token_length, are left out with one warning, as
    the reference does; ValueError when none is left."""
    kept, rows, bad = [], [], []
    for label in labels:
        try:
            ids = vocab.encode(label)
        except KeyError:
            bad.append(label)
            continue
        if len(ids) > token_length:
            bad.append(label)
            continue
        kept.append(label)
        rows.append(ids)
    if bad:
        log.warning("%d guide labels cannot be spelled by this checkpoint's tokens and are left out: %s",
                    len(bad), ', '.join(bad[:5]) + (' ...' if len(bad) > 5 else ''))
    if not rows:
        raise ValueError("no guide label can be spelled by this checkpoint's tokens: give labels of "
                         "its vocabulary, or use generation auto (guided to the checkpoint's own nouns)")
    return tuple(kept), target_matrix(rows, token_length)


@dataclass(frozen=True, eq=False)
class NovicDecoding:
    """A NOVIC checkpoint's decoding: token_length (end token included) and the W x token_length
    compact ids of its trained nouns (the default guide and the vocabulary prior's nouns)."""
    token_length: int
    targets: np.ndarray
    default_generation: str = DEFAULT_GENCFG

    def config(self, name: str) -> NovicGenConfig:
        return NovicGenConfig.from_name(self.default_generation if name == AUTO else name)

    def guide_for(self, vocab: LabelVocab, labels) -> np.ndarray:
        """The guide targets of a label list (see spell_targets)."""
        return spell_targets(vocab, tuple(dict.fromkeys(labels)), self.token_length)[1]

    @cached_property
    def targets_i64(self) -> np.ndarray:
        return np.ascontiguousarray(self.targets, dtype=np.int64)

    def generate(self, runner, embeds: np.ndarray, cfg: NovicGenConfig, guide: np.ndarray | None = None) -> Sequences:
        """cfg over the embeddings, as Sequences: best first, log_probs the reference's scores (exp of
        which is its probability), every candidate finished (the reference reads a label that reached
        token_length as a label)."""
        guide = self.targets_i64 if guide is None else guide
        res = novic_generate(runner, np.asarray(embeds, np.float32), cfg, self.token_length,
                             guide if cfg.guided else None, self.targets_i64 if cfg.vocab_prior else None)
        zeros = np.zeros(res.tokens.shape, np.float32)
        return Sequences(res.tokens, res.scores, zeros, np.ones(res.scores.shape, bool))

    @staticmethod
    def greedy_of(cfg: NovicGenConfig) -> NovicGenConfig:
        """The greedy configuration with cfg's guiding and temperature (object windows: one label each)."""
        return replace(cfg, name=f"greedy of {cfg.name}", method='greedy', topk=1, vocab_prior=False,
                       vocab_per_token=False, vocab_scaler=0.0, length_alpha=0.0)
