"""Key/value caches for ObjectDecoder attention, so each generated token costs one position.

Both kinds expose `length` (positions already cached), `update(layer, k, v)` (store the new
positions' keys/values, return everything cached for that layer) and `advance(n)`.
"""
from __future__ import annotations

import torch

from .decoder import DecoderConfig


class StaticKVCache:
    """Preallocated buffers (layers x B x H x max_positions x Dh), written in place: no
    reallocation per token. `reorder` moves rows for beam search into a second pair of buffers and
    swaps (allocated once); only a change of row count (frames expanded to beams) allocates."""

    def __init__(self, cfg: DecoderConfig, batch: int, device, dtype=torch.float32):
        shape = (cfg.layers, batch, cfg.heads, cfg.max_positions, cfg.width // cfg.heads)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self._spare: tuple[torch.Tensor, torch.Tensor] | None = None
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        # k, v: B x H x T x Dh for the T new positions
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int):
        self.length += n

    def reorder(self, index: torch.Tensor):
        """Row i of the cache becomes old row index[i]; len(index) may differ from the batch."""
        if len(index) != self.k.shape[1]:
            self.k, self.v, self._spare = self.k.index_select(1, index), self.v.index_select(1, index), None
            return
        if self._spare is None:
            self._spare = (torch.empty_like(self.k), torch.empty_like(self.v))
        k, v = self._spare
        # Only the filled positions are worth copying.
        torch.index_select(self.k[..., :self.length, :], 1, index, out=k[..., :self.length, :])
        torch.index_select(self.v[..., :self.length, :], 1, index, out=v[..., :self.length, :])
        self._spare = (self.k, self.v)
        self.k, self.v = k, v


class ConcatKVCache:
    """Functional cache for graph export: past keys/values come in as tensors and the
    present ones (past + new) go out. `length` is the past length, from the tensor shape."""

    def __init__(self, past_k: torch.Tensor | None = None, past_v: torch.Tensor | None = None, layers: int = 0):
        # past_k, past_v: layers x B x H x T_past x Dh, or None for an empty cache
        self.k = list(past_k.unbind(0)) if past_k is not None else [None] * layers
        self.v = list(past_v.unbind(0)) if past_v is not None else [None] * layers
        self.length = past_k.shape[3] if past_k is not None else 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def advance(self, n: int):
        self.length = self.length + n

    def present(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack(self.k), torch.stack(self.v)
