"""Eager PyTorch backend: the open_clip model and the object decoder as they are."""
from __future__ import annotations

import torch

from ..core.clip_encoder import ClipEncoder
from ..core.decoder import ObjectDecoder
from ..core.generation import TorchCachedRunner


class TorchBackend:
    name = 'torch'

    def __init__(self, encoder: ClipEncoder, decoder: ObjectDecoder, eot: int):
        self.encoder = encoder
        self.device = encoder.device
        self.input_dtype = encoder.input_dtype
        # Prompted mode runs without a decoder.
        self.runner = TorchCachedRunner(decoder.to(encoder.device, torch.float32), eot) if decoder is not None else None

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode_images(pixels)

    def describe(self) -> str:
        return f"torch {torch.__version__} on {self.device} ({self.encoder.precision})"
