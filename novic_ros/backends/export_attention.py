"""CLIP's self-attention written for export: torch's nn.MultiheadAttention traces into about eight
transposes and reshapes a layer (it goes through its sequence-first layout and back), which
OpenVINO's CPU plugin runs as unfused reference kernels: 6 of 21 ms of ViT-B/32's image encoder at
batch 1 in bf16 on an AMX Xeon. The same arithmetic as one input projection, a head split, torch's
scaled_dot_product_attention and the output projection traces into two transposes a layer, which
OpenVINO and ONNX Runtime fuse. Used on the copies the exporter makes; the live models are untouched.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ExportSelfAttention(nn.Module):
    """Stands in for a batch-first nn.MultiheadAttention; self-attention with no key padding mask
    and no weights asked for is computed here, anything else by the wrapped module."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        self.mha = mha

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, **kw):
        if not (query is key and key is value) or key_padding_mask is not None or need_weights or kw:
            return self.mha(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                            attn_mask=attn_mask, **kw)
        m = self.mha
        batch, length, width = query.shape
        heads = m.num_heads
        qkv = F.linear(query, m.in_proj_weight, m.in_proj_bias)
        q, k, v = qkv.reshape(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            # nn.MultiheadAttention's boolean mask marks the positions *not* to attend; SDPA's the ones to.
            attn_mask = ~attn_mask
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return m.out_proj(y.transpose(1, 2).reshape(batch, length, width)), None


def replaceable(module: nn.Module) -> bool:
    return (isinstance(module, nn.MultiheadAttention) and module.batch_first and module._qkv_same_embed_dim
            and module.in_proj_weight is not None and module.bias_k is None and not module.add_zero_attn)


def with_export_attention(model: nn.Module) -> nn.Module:
    """`model` with each replaceable nn.MultiheadAttention wrapped in ExportSelfAttention (in place;
    pass a copy). Towers with their own attention classes (open_clip's Attention, timm) are left as
    they are."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if replaceable(child):
                setattr(parent, name, ExportSelfAttention(child))
    return model
