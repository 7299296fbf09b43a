"""Decoder runners for the torch ObjectDecoder (see generation.py for the interface): with a
preallocated key/value cache, and without one (recomputing every position: the reference the
cached runner is tested and benchmarked against). Arrays cross the boundary as numpy, so the
search code is the one every backend uses; embeddings may come in as numpy or torch tensors."""
from __future__ import annotations

import numpy as np
import torch

from .decoder import ObjectDecoder
from .kv_cache import StaticKVCache


def _tensor(x, device, dtype=None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device, dtype) if dtype is not None else t.to(device)


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class _CachedSession:
    def __init__(self, decoder: ObjectDecoder, cache: StaticKVCache, device):
        self.decoder, self.cache, self.device = decoder, cache, device

    @torch.inference_mode()
    def step(self, tokens):
        return _array(self.decoder.step(_tensor(tokens, self.device, torch.long), self.cache))

    @torch.inference_mode()
    def reorder(self, index):
        self.cache.reorder(_tensor(index, self.device, torch.long))


class TorchCachedRunner:
    """ObjectDecoder with a preallocated key/value cache: each step runs one position."""

    def __init__(self, decoder: ObjectDecoder, eot: int):
        self.decoder = decoder.eval()
        self.vocab_size, self.eot, self.max_tokens = decoder.cfg.vocab_size, eot, decoder.cfg.max_tokens

    @torch.inference_mode()
    def start(self, embeds):
        p = next(self.decoder.parameters())
        cache = StaticKVCache(self.decoder.cfg, embeds.shape[0], p.device, p.dtype)
        logits = self.decoder.prefill(_tensor(embeds, p.device, p.dtype), cache)
        return _array(logits), _CachedSession(self.decoder, cache, p.device)


class _RecomputeSession:
    def __init__(self, decoder, embeds):
        self.decoder, self.embeds = decoder, embeds
        self.tokens = torch.zeros((embeds.shape[0], 0), dtype=torch.long, device=embeds.device)

    @torch.inference_mode()
    def step(self, tokens):
        self.tokens = torch.cat([self.tokens, _tensor(tokens, self.embeds.device, torch.long)[:, None]], dim=1)
        return _array(self.decoder(self.embeds, self.tokens)[:, -1])

    @torch.inference_mode()
    def reorder(self, index):
        index = _tensor(index, self.embeds.device, torch.long)
        self.embeds, self.tokens = self.embeds.index_select(0, index), self.tokens.index_select(0, index)


class TorchRecomputeRunner(TorchCachedRunner):
    """The same decoder without a cache: every step reruns the whole sequence."""

    @torch.inference_mode()
    def start(self, embeds):
        p = next(self.decoder.parameters())
        embeds = _tensor(embeds, p.device, p.dtype)
        return _array(self.decoder(embeds)[:, -1]), _RecomputeSession(self.decoder, embeds)
