"""The object decoder: a small causal transformer that reads a CLIP embedding, projected to a
prefix of `prefix_len` vectors, and emits a noun in (compact) CLIP BPE tokens up to end-of-text.

    sequence:  [p_0 .. p_{P-1}] [t_0 .. t_{n-1}]       P prefix vectors, n tokens so far
    output at position P-1+j predicts token t_j

All sizes live in DecoderConfig, so small and large decoders share this code, and so does the
NOVIC reference's PrefixedIterDecoder (models/novic_checkpoint.py maps its checkpoints here): no
biases, a single bias-free Linear prefix projection, a feed-forward narrower than the width, and
prefix positions that attend to each other freely (`causal_prefix` False). Attention reads
and writes keys/values through a cache object (see kv_cache.py): generation uses a
preallocated cache, ONNX export a concatenating one, training none.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

PREFIX_MLPS = ('gelu', 'linear')


@dataclass(frozen=True)
class DecoderConfig:
    embed_dim: int            # E: width of the CLIP embedding the decoder reads
    vocab_size: int           # V: compact output vocabulary, end-of-text included
    width: int = 512          # D: transformer width
    layers: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    prefix_len: int = 4       # P: vectors the embedding is projected to
    max_tokens: int = 12      # most tokens generated, end-of-text included
    dropout: float = 0.0
    bias: bool = True         # biases in the transformer's linear layers and layer norms
    prefix_mlp: str = 'gelu'  # gelu: Linear(E, D) + GELU + Linear(D, P x D); linear: one bias-free Linear(E, P x D)
    causal_prefix: bool = True  # False: the P prefix positions attend to each other in both directions

    def __post_init__(self):
        for f in ('embed_dim', 'vocab_size', 'width', 'layers', 'heads', 'prefix_len', 'max_tokens'):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"decoder config: {f} must be >= 1, got {getattr(self, f)}")
        if self.width % self.heads:
            raise ValueError(f"decoder config: width {self.width} is not divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"decoder config: dropout must be in [0, 1), got {self.dropout}")
        if self.prefix_mlp not in PREFIX_MLPS:
            raise ValueError(
                f"decoder config: prefix_mlp must be one of {', '.join(PREFIX_MLPS)}, got {self.prefix_mlp!r}"
            )
        if self.mlp_ratio <= 0 or round(self.width * self.mlp_ratio) < 1:
            raise ValueError(
                f"decoder config: mlp_ratio {self.mlp_ratio} gives no feed-forward width at width {self.width}"
            )

    @property
    def mlp_width(self) -> int:
        return round(self.width * self.mlp_ratio)

    @property
    def max_positions(self) -> int:
        return self.prefix_len + self.max_tokens

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> 'DecoderConfig':
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"decoder config: unknown keys {sorted(unknown)}")
        return cls(**d)


class SelfAttention(nn.Module):
    def __init__(self, cfg: DecoderConfig, index: int):
        super().__init__()
        self.index = index            # which layer of the cache to use
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=cfg.bias)
        self.proj = nn.Linear(cfg.width, cfg.width, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.open_prefix = 0 if cfg.causal_prefix else cfg.prefix_len

    def forward(self, x: torch.Tensor, cache=None) -> torch.Tensor:
        B, T, D = x.shape                                     # T new positions
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # B x H x T x Dh
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(self.index, k, v)             # B x H x (past+T) x Dh
        # New positions see all past positions and the new ones causally. With one new
        # position (a generation step) that is everything, so no mask is needed.
        drop = self.dropout if self.training else 0.0
        if T == 1:
            y = F.scaled_dot_product_attention(q, k, v)
        elif past == 0 and not self.open_prefix:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        else:
            # Query at absolute position i sees key j <= i; with an open prefix of P positions,
            # queries inside the prefix also see every prefix key.
            qpos = torch.arange(past, past + T, device=x.device)[:, None]
            kpos = torch.arange(past + T, device=x.device)[None, :]
            mask = kpos <= qpos
            if self.open_prefix:
                mask = mask | ((qpos < self.open_prefix) & (kpos < self.open_prefix))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).reshape(B, T, D)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig, index: int):
        super().__init__()
        hidden = cfg.mlp_width
        self.ln1 = nn.LayerNorm(cfg.width, bias=cfg.bias)
        self.attn = SelfAttention(cfg, index)
        self.ln2 = nn.LayerNorm(cfg.width, bias=cfg.bias)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, hidden, bias=cfg.bias), nn.GELU(),
                                 nn.Linear(hidden, cfg.width, bias=cfg.bias))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cache=None):
        x = x + self.drop(self.attn(self.ln1(x), cache))
        return x + self.drop(self.mlp(self.ln2(x)))


class ObjectDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        D, P = cfg.width, cfg.prefix_len
        self.prefix = nn.Sequential(nn.Linear(cfg.embed_dim, D), nn.GELU(), nn.Linear(D, P * D)) \
            if cfg.prefix_mlp == 'gelu' else nn.Sequential(nn.Linear(cfg.embed_dim, P * D, bias=False))
        self.token_embedding = nn.Embedding(cfg.vocab_size, D)
        self.pos_embedding = nn.Parameter(torch.zeros(cfg.max_positions, D))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.layers))
        self.ln_final = nn.LayerNorm(D, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)
        # Optional mean shift from image-embedding space towards the text embeddings the decoder was
        # trained on (bridges CLIP's modality gap; zero unless set by the trainer, see training/modality_gap.py).
        self.register_buffer('input_shift', torch.zeros(cfg.embed_dim))
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
        nn.init.normal_(self.pos_embedding, std=0.01)
        # GPT-2 style: scale the residual projections by depth so the residual stream stays unit-sized.
        for b in self.blocks:
            nn.init.normal_(b.attn.proj.weight, std=std / math.sqrt(2 * self.cfg.layers))
            nn.init.normal_(b.mlp[2].weight, std=std / math.sqrt(2 * self.cfg.layers))

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        # Output weights are tied to the token embedding.
        return F.linear(self.ln_final(h), self.token_embedding.weight)

    def embed_prefix(self, embeds: torch.Tensor) -> torch.Tensor:
        B = embeds.shape[0]
        embeds = F.normalize(embeds + self.input_shift, dim=-1)
        x = self.prefix(embeds).view(B, self.cfg.prefix_len, self.cfg.width)   # B x P x D
        return x + self.pos_embedding[:self.cfg.prefix_len]

    def embed_tokens(self, tokens: torch.Tensor, start: int | torch.Tensor) -> torch.Tensor:
        # tokens: B x T compact ids placed at positions start .. start+T-1
        T = tokens.shape[1]
        pos = self.pos_embedding.narrow(0, start, T) if isinstance(start, int) else \
            self.pos_embedding[start + torch.arange(T, device=tokens.device)]
        return self.token_embedding(tokens) + pos

    def forward(self, embeds: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced pass without a cache. embeds: B x E, tokens: B x T (or None).
        Returns B x (T+1) x V logits; entry j predicts token j."""
        x = self.embed_prefix(embeds)                                          # B x P x D
        if tokens is not None and tokens.shape[1]:
            if self.cfg.prefix_len + tokens.shape[1] > self.cfg.max_positions:
                raise ValueError(f"{tokens.shape[1]} tokens exceed max_tokens={self.cfg.max_tokens}")
            x = torch.cat([x, self.embed_tokens(tokens, self.cfg.prefix_len)], dim=1)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self._logits(x[:, self.cfg.prefix_len - 1:])

    def prefill(self, embeds: torch.Tensor, cache) -> torch.Tensor:
        """Run the prefix into an empty cache. Returns B x V logits for the first token."""
        x = self.embed_prefix(embeds)
        for block in self.blocks:
            x = block(x, cache)
        cache.advance(self.cfg.prefix_len)
        return self._logits(x[:, -1])

    def step(self, tokens: torch.Tensor, cache) -> torch.Tensor:
        """One new token per row (B), at the next cache position. Returns B x V logits."""
        if cache.length >= self.cfg.max_positions:
            raise ValueError(f"cannot decode past max_tokens={self.cfg.max_tokens}")
        x = self.embed_tokens(tokens[:, None], cache.length)                   # B x 1 x D
        for block in self.blocks:
            x = block(x, cache)
        cache.advance(1)
        return self._logits(x[:, -1])
