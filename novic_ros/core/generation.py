"""Greedy and beam-search generation, written once for every backend.

A backend supplies a *decoder runner*: `start(embeds)` returns the first-token logits and a
session; `session.step(tokens)` feeds one token per row and returns the next logits;
`session.reorder(index)` moves rows (beam search). The torch runners (with and without a
key/value cache) are at the end of this module; those of ONNX Runtime and TensorRT are in
novic_ros.backends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from .decoder import ObjectDecoder
from .kv_cache import StaticKVCache


class DecoderSession(Protocol):
    def step(self, tokens: torch.Tensor) -> torch.Tensor: ...          # B -> B x V logits
    def reorder(self, index: torch.Tensor) -> None: ...


class DecoderRunner(Protocol):
    vocab_size: int
    eot: int
    max_tokens: int

    def start(self, embeds: torch.Tensor) -> tuple[torch.Tensor, DecoderSession]: ...


@dataclass(frozen=True)
class Sequences:
    """Generated token sequences, K per frame, best first.
    tokens: B x K x T compact ids, end-of-text padded. log_probs: B x K sequence log-probabilities
    (sum over tokens up to and including end-of-text). token_log_probs: B x K x T (0 after the end).
    finished: B x K, False where max_tokens was reached before end-of-text."""
    tokens: torch.Tensor
    log_probs: torch.Tensor
    token_log_probs: torch.Tensor
    finished: torch.Tensor


def _check_max_tokens(runner: DecoderRunner, max_tokens: int | None) -> int:
    if max_tokens is None:
        return runner.max_tokens
    if not 1 <= max_tokens <= runner.max_tokens:
        raise ValueError(f"max_tokens must be in [1, {runner.max_tokens}] for this decoder, got {max_tokens}")
    return max_tokens


@torch.inference_mode()
def greedy(runner: DecoderRunner, embeds: torch.Tensor, max_tokens: int | None = None) -> Sequences:
    max_tokens = _check_max_tokens(runner, max_tokens)
    B = embeds.shape[0]
    logits, session = runner.start(embeds)
    tokens, lps = [], []
    finished = torch.zeros(B, dtype=torch.bool, device=logits.device)
    for t in range(max_tokens):
        logp = torch.log_softmax(logits.float(), dim=-1)                       # B x V
        tok = logp.argmax(dim=-1)
        lp = logp.gather(1, tok[:, None])[:, 0]
        # Rows that already ended keep emitting end-of-text at no cost.
        tok = torch.where(finished, torch.full_like(tok, runner.eot), tok)
        lp = torch.where(finished, torch.zeros_like(lp), lp)
        tokens.append(tok)
        lps.append(lp)
        finished = finished | (tok == runner.eot)
        if bool(finished.all()) or t == max_tokens - 1:
            break
        logits = session.step(tok)
    tok_lp = torch.stack(lps, dim=1)                                            # B x T
    return Sequences(torch.stack(tokens, dim=1)[:, None], tok_lp.sum(1)[:, None], tok_lp[:, None], finished[:, None])


@torch.inference_mode()
def beam_search(runner: DecoderRunner, embeds: torch.Tensor, width: int, max_tokens: int | None = None) -> Sequences:
    """Vectorised beam search: B frames x K beams advance together, one step per token."""
    max_tokens = _check_max_tokens(runner, max_tokens)
    if not 1 <= width <= runner.vocab_size:
        raise ValueError(f"beam width must be in [1, {runner.vocab_size}], got {width}")
    B, K, V, eot = embeds.shape[0], width, runner.vocab_size, runner.eot
    logits, session = runner.start(embeds)
    logp = torch.log_softmax(logits.float(), dim=-1)                            # B x V
    dev = logp.device
    scores, tok = logp.topk(K, dim=-1)                                          # B x K
    seqs, seq_lp = tok[..., None], scores[..., None]                            # B x K x 1
    finished = tok == eot
    session.reorder(torch.arange(B, device=dev).repeat_interleave(K))           # frames -> beams
    rows = (torch.arange(B, device=dev) * K)[:, None]                           # B x 1 offsets
    for _ in range(1, max_tokens):
        if bool(finished.all()):
            break
        logp = torch.log_softmax(session.step(seqs[:, :, -1].reshape(B * K)).float(), dim=-1).view(B, K, V)
        # A finished beam can only continue with end-of-text, at no cost.
        logp = torch.where(finished[..., None], torch.full_like(logp, float('-inf')), logp)
        logp[..., eot] = torch.where(finished, torch.zeros_like(scores), logp[..., eot])
        cand = scores[..., None] + logp                                         # B x K x V
        scores, flat = cand.view(B, K * V).topk(K, dim=-1)                      # B x K
        beam, tok = flat // V, flat % V
        step_lp = logp.view(B, K * V).gather(1, flat)
        seqs = torch.cat([seqs.gather(1, beam[..., None].expand(-1, -1, seqs.shape[2])), tok[..., None]], dim=2)
        seq_lp = torch.cat([seq_lp.gather(1, beam[..., None].expand(-1, -1, seq_lp.shape[2])), step_lp[..., None]], dim=2)
        finished = finished.gather(1, beam) | (tok == eot)
        session.reorder((beam + rows).view(-1))
    return Sequences(seqs, scores, seq_lp, finished)


# --- Runners for the torch decoder -------------------------------------------------------------

class _CachedSession:
    def __init__(self, decoder: ObjectDecoder, cache: StaticKVCache):
        self.decoder, self.cache = decoder, cache

    def step(self, tokens):
        return self.decoder.step(tokens, self.cache)

    def reorder(self, index):
        self.cache.reorder(index)


class TorchCachedRunner:
    """ObjectDecoder with a preallocated key/value cache: each step runs one position."""

    def __init__(self, decoder: ObjectDecoder, eot: int):
        self.decoder = decoder.eval()
        self.vocab_size, self.eot, self.max_tokens = decoder.cfg.vocab_size, eot, decoder.cfg.max_tokens

    def start(self, embeds):
        p = next(self.decoder.parameters())
        cache = StaticKVCache(self.decoder.cfg, embeds.shape[0], p.device, p.dtype)
        logits = self.decoder.prefill(embeds.to(p.device, p.dtype), cache)
        return logits, _CachedSession(self.decoder, cache)


class _RecomputeSession:
    def __init__(self, decoder, embeds):
        self.decoder, self.embeds = decoder, embeds
        self.tokens = torch.zeros((embeds.shape[0], 0), dtype=torch.long, device=embeds.device)

    def step(self, tokens):
        self.tokens = torch.cat([self.tokens, tokens[:, None]], dim=1)
        return self.decoder(self.embeds, self.tokens)[:, -1]

    def reorder(self, index):
        self.embeds, self.tokens = self.embeds.index_select(0, index), self.tokens.index_select(0, index)


class TorchRecomputeRunner(TorchCachedRunner):
    """The same decoder without a cache: every step reruns the whole sequence. The reference
    that the cached runner is tested and benchmarked against."""

    def start(self, embeds):
        p = next(self.decoder.parameters())
        embeds = embeds.to(p.device, p.dtype)
        return self.decoder(embeds)[:, -1], _RecomputeSession(self.decoder, embeds)
