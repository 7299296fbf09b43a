"""A multi-label head in CLIP space trained on text alone: candidate (b) of the multi-object study
(tools/objects_study.py), after "Language-Driven Cross-Modal Classifier for Zero-Shot
Multi-Label Image Recognition" (Xie et al., ICML 2024).

Training sees no image. Captions name one to four nouns ("a photo of a dog, a cat and a kite.")
or none ("a striped background."); CLIP's text tower embeds them; Gaussian noise on the unit
embeddings (as for the decoder, trainer.add_noise) stands in for the modality gap; a small MLP
learns one sigmoid per noun (binary cross-entropy against the nouns the caption names).

At run time an image embedding is first carried toward the text modality (the paper's
cross-modal mapping): v' = normalise(alpha * softmax(v . B / tau) B + (1 - alpha) v), with B the
embeddings of single-noun prompts, so the head reads something shaped like what it was trained on.

It lost the study (README, "Several objects per frame"): it is kept for rerunning the comparison,
not used by the node.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from novic_ros.training.prompts import SINGLE, PromptGenerator, _article
from novic_ros.training.trainer import add_noise

MULTI_TEMPLATES = ('a photo of {}.', 'a picture of {}.', '{}.', 'a photo with {}.', 'an image showing {}.',
                   'there are {} in the picture.', 'a scene with {}.', 'a drawing of {}.', '{} on a table.',
                   'a camera frame with {}.', 'the robot sees {}.')
# Captions that name no noun: the head must learn that backgrounds and clutter are nothing.
EMPTY = ('a plain background.', 'an empty picture.', 'a striped background.', 'a colourful background.',
         'a gradient.', 'noise.', 'a blurry background.', 'a red circle.', 'a blue rectangle.', 'a green line.',
         'some shapes.', 'a scribble.', 'a polygon.', 'an empty table.', 'nothing.', 'a wall.', 'a pattern.')


def _join(nouns: list[str]) -> str:
    items = [_article('a ' + n) for n in nouns]
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


def captions(nouns: list[str], count: int, seed: int = 0, empty_fraction: float = 0.05,
             most: int = 4) -> tuple[list[str], list[list[int]]]:
    """`count` captions with the indices of the nouns each names."""
    rng = random.Random(seed)
    texts, targets = [], []
    for _ in range(count):
        if rng.random() < empty_fraction:
            texts.append(rng.choice(EMPTY))
            targets.append([])
            continue
        picked = rng.sample(range(len(nouns)), rng.randint(1, min(most, len(nouns))))
        if len(picked) == 1 and rng.random() < 0.5:
            texts.append(_article(rng.choice(SINGLE).format(nouns[picked[0]])))
        else:
            texts.append(rng.choice(MULTI_TEMPLATES).format(_join([nouns[i] for i in picked])))
        targets.append(picked)
    return texts, targets


@dataclass(frozen=True)
class HeadConfig:
    captions: int = 40000
    noise: float = 1.0
    hidden: int = 256
    steps: int = 3000
    batch_size: int = 512
    lr: float = 3e-3
    tau: float = 0.05            # cross-modal mapping: softmax temperature over the prompt bank
    alpha: float = 0.5           # cross-modal mapping: share of the text-side estimate
    seed: int = 0


class MultiLabelHead:
    """Callable: B x E unit image embeddings -> B x N probabilities, one per noun."""

    def __init__(self, model: torch.nn.Module, nouns: list[str], bank: np.ndarray, cfg: HeadConfig):
        self.model, self.nouns, self.bank, self.cfg = model.eval(), list(nouns), torch.from_numpy(bank), cfg

    @torch.inference_mode()
    def __call__(self, embeds: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(np.asarray(embeds, np.float32))
        weights = torch.softmax(v @ self.bank.T / self.cfg.tau, dim=-1)
        v = F.normalize(self.cfg.alpha * F.normalize(weights @ self.bank, dim=-1) + (1 - self.cfg.alpha) * v, dim=-1)
        return torch.sigmoid(self.model(v)).numpy()


def train_head(encoder, nouns: list[str], cfg: HeadConfig = HeadConfig()) -> MultiLabelHead:
    """Train on captions embedded by `encoder` (anything with encode_texts: texts -> N x E unit vectors)."""
    texts, targets = captions(list(nouns), cfg.captions, cfg.seed)
    emb = torch.as_tensor(np.asarray(encoder.encode_texts(texts), np.float32))
    y = torch.zeros(len(texts), len(nouns))
    for i, t in enumerate(targets):
        y[i, t] = 1.0
    torch.manual_seed(cfg.seed)
    e = emb.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(e, cfg.hidden), torch.nn.GELU(), torch.nn.Linear(cfg.hidden, len(nouns))
    )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.steps):
        pick = torch.randint(len(emb), (cfg.batch_size,), generator=gen)
        loss = F.binary_cross_entropy_with_logits(model(add_noise(emb[pick], cfg.noise, gen)), y[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    bank_texts = [p.text for p in PromptGenerator(list(nouns), seed=cfg.seed + 1, weights=(1, 0, 0, 0)).prompts(5)]
    bank = np.asarray(encoder.encode_texts(bank_texts), np.float32)
    return MultiLabelHead(model, list(nouns), bank, cfg)
