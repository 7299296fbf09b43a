"""A writer of the NOVIC reference's checkpoint format (`.train`: torch.save of a dict; see
novic_ros/models/novic_checkpoint.py) with known contents, and an independent decoder over its
state dict built from torch's own nn.TransformerEncoder, as the reference's PrefixedIterDecoder is.
Test helpers only: nothing here is the reference's code."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from novic_ros.core.clip_bpe import EOT_TOKEN_ID, clip_bpe


def noun_list(n_single: int = 220, n_pairs: int = 110, n_triples: int = 40) -> list[str]:
    """Deterministic English words from CLIP's own vocabulary, and two- and three-word compounds."""
    bpe = clip_bpe()
    words = []
    for tid in range(300, 49000):
        t = bpe.decoder[tid]
        if t.endswith('</w>') and t[:-4].isalpha() and t[:-4].isascii() and len(t) >= 8:
            words.append(t[:-4])
        if len(words) == n_single:
            break
    pairs = [f"{words[i]} {words[(7 * i + 3) % len(words)]}" for i in range(n_pairs)]
    triples = [f"{words[(3 * i + 1) % len(words)]} {words[(5 * i + 2) % len(words)]} {words[(11 * i) % len(words)]}"
               for i in range(n_triples)]
    return words + pairs + triples


def write_checkpoint(path: Path, nouns: list[str], *, embed_dim=32, hidden=48, layers=2, heads=4, ff='1/2',
                     prefix=3, seed=0, vocab_quant=False, encode=None, end_id=EOT_TOKEN_ID, tokenizer_size=49408,
                     **cfg_over) -> Path:
    """`encode`: noun -> its tokenizer ids without the end token (default CLIP's BPE); `end_id` the
    tokenizer's end (= pad) id, compact 0; `tokenizer_size` its vocabulary size (compact_map's length)."""
    encode = encode or clip_bpe().encode
    ids = sorted({t for n in nouns for t in encode(n)} - {end_id})
    unmap = [end_id] + ids
    V = len(unmap)
    Q = -(-V // 64) * 64 if vocab_quant else V
    token_length = max(len(encode(n)) for n in nouns) + 1
    g = torch.Generator().manual_seed(seed)
    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std
    ffw = int(hidden * eval(ff))
    S = prefix + token_length - 1
    logits = rnd(Q, hidden, std=0.5)
    logits[V:] = 0
    sd = {'embed_mlp.mlp.0.weight': rnd(prefix * hidden, embed_dim, std=1.0),
          'logits_linear.weight': logits, 'pos_embedding.embedding.weight': rnd(S, hidden),
          'transformer.norm.weight': 1 + rnd(hidden, std=0.1)}
    for i in range(layers):
        p = f'transformer.layers.{i}.'
        sd.update(
            {
                p + 'self_attn.in_proj_weight': rnd(3 * hidden, hidden),
                p + 'self_attn.out_proj.weight': rnd(hidden, hidden),
                p + 'linear1.weight': rnd(ffw, hidden),
                p + 'linear2.weight': rnd(hidden, ffw),
                p + 'norm1.weight': 1 + rnd(hidden, std=0.1),
                p + 'norm2.weight': 1 + rnd(hidden, std=0.1),
            }
        )
    mask = torch.triu(torch.full((S, S), float('-inf')), diagonal=1)
    mask[:prefix, :prefix] = 0
    sd['causality_mask'] = mask
    cfg = {
        'embedder_spec': 'openai:ViT-B/32',
        'model': 'PrefixedIterDecoder',
        'hidden_dim': hidden,
        'num_layers': layers,
        'num_heads': heads,
        'feedfwd_scale': ff,
        'mlp_seq_len': prefix,
        'mlp_hidden_layer': 'none',
        'weight_tying': True,
        'layer_norm_first': True,
        'layer_bias': False,
        'logits_bias': False,
        'layer_activation': 'gelu',
        'strictly_causal': False,
        'vocab_quant': vocab_quant,
        'num_end_loss': 1,
        'init_rezero_mode': 'none',
        'input_dropout': 0.1,
        'layer_dropout': 0.1,
        'amp': True,
    }
    cfg.update(cfg_over)
    cmap = torch.full((tokenizer_size,), -1, dtype=torch.int64)
    cmap[torch.tensor(ids)] = torch.arange(1, V)
    cmap[end_id] = 0
    tc = {'vocab_size': V, 'token_dtype': torch.int64, 'mask_dtype': torch.bool, 'start_token_id': None,
          'end_token_id': 0, 'pad_token_id': 0, 'compact_ids': True, 'compact_map': cmap,
          'compact_unmap': torch.tensor(unmap), 'fixed_token_length': False, 'token_length': token_length,
          'use_masks': True}
    torch.save({'cfg_flat': cfg, 'target_config': tc, 'data_config': {'use_weights': False},
                'model_state_dict': sd, 'target_nouns': [''] + list(nouns), 'num_invalid_target_nouns': 1}, path)
    return path


class ReferenceShapedDecoder(nn.Module):
    """PrefixedIterDecoder's forward from its published structure, on torch's TransformerEncoder."""

    def __init__(self, path: Path):
        super().__init__()
        ck = torch.load(path, weights_only=True)
        cfg, sd, tc = ck['cfg_flat'], ck['model_state_dict'], ck['target_config']
        D, H, P = cfg['hidden_dim'], cfg['num_heads'], cfg['mlp_seq_len']
        self.P, self.D, self.V = P, D, tc['vocab_size']
        layer = nn.TransformerEncoderLayer(D, H, int(D * eval(cfg['feedfwd_scale'])), dropout=0.0, activation='gelu',
                                           batch_first=True, norm_first=True, bias=False)
        self.transformer = nn.TransformerEncoder(layer, cfg['num_layers'], norm=nn.LayerNorm(D, bias=False),
                                                 enable_nested_tensor=False)
        self.transformer.load_state_dict(
            {k[len('transformer.') :]: v for k, v in sd.items() if k.startswith('transformer.')}
        )
        self.mlp = sd['embed_mlp.mlp.0.weight']
        self.pos = sd['pos_embedding.embedding.weight']
        self.logits_w = sd['logits_linear.weight']
        self.mask = sd['causality_mask']

    @torch.no_grad()
    def logits(self, embed: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """embed B x E, tokens B x T (compact) -> B x (T+1) x V logits (entry j predicts token j)."""
        B = embed.shape[0]
        x = F.linear(F.normalize(embed, dim=-1), self.mlp).view(B, self.P, self.D)
        x = torch.cat([x, F.embedding(tokens, self.logits_w)], dim=1)
        S = x.shape[1]
        x = x + self.pos[:S]
        x = self.transformer(x, mask=self.mask[:S, :S])
        return F.linear(x[:, self.P - 1:], self.logits_w)[..., :self.V]

    def noun_log_prob(self, embed: torch.Tensor, seqs: list[list[int]], token_length: int) -> torch.Tensor:
        """Teacher-forced log-probability of each compact sequence (end included when it fits in
        token_length - 1 generated tokens) for one embedding: 1 x E -> N."""
        G = token_length - 1
        out = torch.zeros(len(seqs), dtype=torch.float64)
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(seqs):
            by_len.setdefault(len(s[:G]), []).append(i)
        for n, rows in by_len.items():
            toks = torch.tensor([seqs[i][:n] for i in rows], dtype=torch.long)
            lp = torch.log_softmax(self.logits(embed.expand(len(rows), -1), toks[:, :-1]).double(), dim=-1)
            out[rows] = lp.gather(2, toks[:, :, None])[..., 0].sum(1)
        return out
