"""Eager PyTorch backend: the open_clip model and the object decoder as they are; numpy at the
boundary (the search, scoring and preprocessing code is the one every backend uses)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..models.checkpoint import clip_fingerprint
from ..models.clip_encoder import ClipEncoder
from ..models.decoder import ObjectDecoder
from ..models.torch_runners import TorchCachedRunner


class TorchTextEncoder:
    """The open_clip text tower (at the prompts' real token length) behind the TextEncoder interface."""

    def __init__(self, encoder: ClipEncoder):
        self.encoder = encoder
        self.embed_dim = encoder.embed_dim
        self.cache_key = f"{clip_fingerprint(encoder.model)}-{encoder.precision}"

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_texts(list(texts)).numpy()


class TorchBackend:
    name = 'torch'

    def __init__(self, encoder: ClipEncoder, decoder: ObjectDecoder | None, eot: int):
        self.encoder = encoder
        self.device = str(encoder.device)
        # Prompted mode runs without a decoder.
        self.runner = TorchCachedRunner(decoder.to(encoder.device, torch.float32), eot) if decoder is not None else None
        self.text_encoder = TorchTextEncoder(encoder)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        return self.encoder.encode_images(torch.from_numpy(np.ascontiguousarray(pixels))).cpu().numpy()

    def describe(self) -> str:
        return f"torch {torch.__version__} on {self.device} ({self.encoder.precision})"
