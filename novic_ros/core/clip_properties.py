"""What the classifier needs to know about a CLIP model, whatever runs it (the torch model, or a
bundle of exported graphs): its preprocessing, the scale of its image-text similarity, its
embedding width, and the fingerprint of its weights (what a decoder checkpoint is paired with)."""
from __future__ import annotations

from dataclasses import dataclass

from .preprocess import PreprocessConfig


@dataclass(frozen=True)
class ClipFacts:
    preprocess: PreprocessConfig
    logit_scale: float           # CLIP's exp(logit_scale): softmax temperature of prompted scoring
    embed_dim: int
    fingerprint: str = ''        # checkpoint.clip_fingerprint of the weights; '' if unknown
