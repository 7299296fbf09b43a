"""Eager PyTorch backend: the open_clip model and the object decoder as they are; numpy at the
boundary (the search, scoring and preprocessing code is the one every backend uses)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..core.pacing import pacing
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
        if not pacing():
            return self.encoder.encode_texts(list(texts)).numpy()
        # Beside inference (the node's settings thread): one OpenMP thread, so the image tower keeps
        # its cores. torch's count is per thread, but set_num_threads also sets the default of threads
        # that start meanwhile; it is put back at once (TorchBackend.encode_images checks its own).
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.encoder.encode_texts(list(texts)).numpy()
        finally:
            torch.set_num_threads(before)


class TorchBackend:
    name = 'torch'

    def __init__(self, encoder: ClipEncoder, decoder: ObjectDecoder | None, eot: int):
        self.encoder = encoder
        self.device = str(encoder.device)
        # Prompted mode runs without a decoder.
        self.runner = TorchCachedRunner(decoder.to(encoder.device, torch.float32), eot) if decoder is not None else None
        self.text_encoder = TorchTextEncoder(encoder)
        self.threads = torch.get_num_threads()

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        if torch.get_num_threads() != self.threads:     # a thread that started while text was encoded paced
            torch.set_num_threads(self.threads)
        return self.encoder.encode_images(torch.from_numpy(np.ascontiguousarray(pixels))).cpu().numpy()

    def describe(self) -> str:
        return f"torch {torch.__version__} on {self.device} ({self.encoder.precision})"
