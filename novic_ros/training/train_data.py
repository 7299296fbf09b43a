"""Everything a training run reads: the nouns and their target tokens (cheap, built first so a
resume can be checked before any heavy work), then the text embeddings of the prompts,
memory-mapped, with the statistics the checkpoint needs computed in one streaming pass."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..models.checkpoint import clip_fingerprint
from ..models.clip_encoder import ClipEncoder
from ..core.label_tokens import LabelVocab
from ..paths import cache_dir
from .data_split import HeldOut
from .distributed import SINGLE, DistContext
from .nouns_source import NounSet, load_nouns
from .prompt_rows import PromptRows
from .prompts import PromptGenerator
from .text_embeddings import TextEmbeddingStore
from .train_config import TrainConfig

log = logging.getLogger(__name__)
IGNORE = -100               # target padding after end-of-text (cross_entropy's ignore_index)
EVAL_ITEMS = 4096           # held-out prompts evaluated at each eval_every (a fixed random subset)


@dataclass(frozen=True, eq=False)
class Labels:
    """The nouns a decoder learns, their tokens, and the prompt rows about them."""
    nouns: NounSet
    vocab: LabelVocab
    tokens: torch.Tensor      # num_nouns x max_tokens target tokens (end-of-text, then IGNORE)
    rows: PromptRows

    @property
    def label_lengths(self) -> np.ndarray:
        return (self.tokens != IGNORE).sum(1).numpy()


@dataclass(frozen=True, eq=False)
class TrainData:
    labels: Labels
    store: TextEmbeddingStore
    embeds: np.ndarray        # N x E float16 unit vectors, memory-mapped (store.open())
    split: HeldOut
    centroid: torch.Tensor    # mean training text embedding (not renormalised), for the mean shift
    val_embeds: torch.Tensor  # up to EVAL_ITEMS held-out rows, float16
    val_targets: torch.Tensor

    @property
    def num_prompts(self) -> int:
        return len(self.labels.rows)


def load_labels(cfg: TrainConfig) -> Labels:
    nouns = load_nouns(cfg.nouns, cfg.max_nouns)
    max_label_tokens = cfg.decoder.max_tokens - 1          # room for end-of-text
    vocab_all = LabelVocab.from_labels(nouns.labels)
    keep = [i for i, label in enumerate(nouns.labels) if len(vocab_all.encode(label)) - 1 <= max_label_tokens]
    if len(keep) < len(nouns.labels):
        log.info("dropping %d nouns longer than %d tokens", len(nouns.labels) - len(keep), max_label_tokens)
        nouns = nouns.subset(keep)
    vocab = LabelVocab.from_labels(nouns.labels)
    tokens = torch.full((len(nouns.labels), cfg.decoder.max_tokens), IGNORE, dtype=torch.long)
    for i, label in enumerate(nouns.labels):
        t = vocab.encode(label)
        tokens[i, :len(t)] = torch.tensor(t)
    generator = PromptGenerator(nouns.labels, nouns.hypernyms, plural=nouns.plural, seed=cfg.seed)
    return Labels(nouns, vocab, tokens, PromptRows(generator, cfg.prompts_per_noun))


def text_precision(encoder: ClipEncoder) -> str:
    """bf16 autocast for the text tower on GPUs (several times faster); fp32 on the CPU, where bf16 is slower."""
    return 'bf16' if encoder.device.type == 'cuda' else 'fp32'


def embedding_store(encoder: ClipEncoder, labels: Labels, cache_root: str | os.PathLike | None) -> TextEmbeddingStore:
    root = Path(cache_root) if cache_root else cache_dir() / 'text-embeddings'
    name = encoder.spec.model.rsplit('/', 1)[-1].replace(':', '_')
    key = f"{name}-{clip_fingerprint(encoder.model)}-{text_precision(encoder)}"
    return TextEmbeddingStore(root, key, labels.rows, encoder.embed_dim)


def prepare_data(encoder: ClipEncoder, cfg: TrainConfig, progress: bool = True,
                 cache_root: str | os.PathLike | None = None, ctx: DistContext = SINGLE,
                 labels: Labels | None = None) -> TrainData:
    labels = labels or load_labels(cfg)
    store = embedding_store(encoder, labels, cache_root)
    store.compute(encoder, cfg.text_batch(encoder.device.type), progress, ctx, bf16=text_precision(encoder) == 'bf16')
    embeds = store.open()
    split = HeldOut(len(labels.rows), cfg.val_fraction, cfg.seed)
    val = np.sort(split.val_rows[:EVAL_ITEMS])
    return TrainData(labels, store, embeds, split, training_centroid(store, split),
                     torch.from_numpy(np.asarray(embeds[val])), torch.from_numpy(labels.rows.targets(val)))


def training_centroid(store: TextEmbeddingStore, split: HeldOut) -> torch.Tensor:
    """Mean of the training rows, in one streaming pass over the file (float64 sums)."""
    total = np.zeros(store.embed_dim, np.float64)
    for start, chunk in store.chunks():
        total += chunk.sum(0, dtype=np.float64)
        held = split.val_in(start, start + len(chunk)) - start
        if len(held):
            total -= chunk[held].sum(0, dtype=np.float64)
    return torch.from_numpy(total / split.num_train).float()
