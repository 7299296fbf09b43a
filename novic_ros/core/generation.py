"""Greedy and beam-search generation over numpy arrays, written once for every backend.

A backend supplies a *decoder runner*: `start(embeds)` returns the first-token logits (B x V
float32) and a session; `session.step(tokens)` feeds one int64 token per row and returns the next
logits; `session.reorder(index)` moves rows (beam search). A step's logits may live in a buffer the
session reuses (ONNX Runtime's and OpenVINO's do, to skip allocations and copies): they are read
before the next step, and a thread runs one decode at a time. The runners of ONNX Runtime and
TensorRT live in novic_ros.backends; those of the torch decoder (with and without a key/value
cache) in torch_runners.py, which converts at its boundary. This module needs no torch, so a
runtime without it decodes with the same code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class DecoderSession(Protocol):
    def step(self, tokens: np.ndarray) -> np.ndarray: ...          # B int64 -> B x V float32 logits
    def reorder(self, index: np.ndarray) -> None: ...


class DecoderRunner(Protocol):
    vocab_size: int
    eot: int
    max_tokens: int

    def start(self, embeds) -> tuple[np.ndarray, DecoderSession]: ...


@dataclass(frozen=True)
class Sequences:
    """Generated token sequences, K per frame, best first (numpy arrays).
    tokens: B x K x T compact ids, end-of-text padded. log_probs: B x K sequence log-probabilities
    (sum over tokens up to and including end-of-text). token_log_probs: B x K x T (0 after the end).
    finished: B x K, False where max_tokens was reached before end-of-text."""
    tokens: np.ndarray
    log_probs: np.ndarray
    token_log_probs: np.ndarray
    finished: np.ndarray


def _check_max_tokens(runner: DecoderRunner, max_tokens: int | None) -> int:
    if max_tokens is None:
        return runner.max_tokens
    if not 1 <= max_tokens <= runner.max_tokens:
        raise ValueError(f"max_tokens must be in [1, {runner.max_tokens}] for this decoder, got {max_tokens}")
    return max_tokens


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    """Over the last axis, in float32 (one exp pass over the logits)."""
    m = logits.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))[..., 0]


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values along the last axis, largest first (ties: lower index first)."""
    n = x.shape[-1]
    idx = np.argpartition(-x, k - 1, axis=-1)[..., :k] if k < n else np.broadcast_to(np.arange(n), x.shape)
    vals = np.take_along_axis(x, idx, axis=-1)
    return np.take_along_axis(idx, np.lexsort((idx, -vals), axis=-1), axis=-1)


def _logits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def greedy(runner: DecoderRunner, embeds, max_tokens: int | None = None) -> Sequences:
    max_tokens = _check_max_tokens(runner, max_tokens)
    B = embeds.shape[0]
    logits, session = runner.start(embeds)
    rows = np.arange(B)
    tokens, lps = [], []
    finished = np.zeros(B, dtype=bool)
    for t in range(max_tokens):
        logits = _logits(logits)
        tok = logits.argmax(axis=-1)
        lp = logits[rows, tok] - _logsumexp(logits)
        # Rows that already ended keep emitting end-of-text at no cost.
        tok = np.where(finished, runner.eot, tok)
        lp = np.where(finished, np.float32(0), lp)
        tokens.append(tok)
        lps.append(lp)
        finished = finished | (tok == runner.eot)
        if finished.all() or t == max_tokens - 1:
            break
        logits = session.step(tok.astype(np.int64))
    tok_lp = np.stack(lps, axis=1).astype(np.float32)                            # B x T
    return Sequences(np.stack(tokens, axis=1)[:, None], tok_lp.sum(axis=1)[:, None], tok_lp[:, None], finished[:, None])


def beam_search(runner: DecoderRunner, embeds, width: int, max_tokens: int | None = None) -> Sequences:
    """Vectorised beam search: B frames x K beams advance together, one step per token. Each step
    keeps the K best continuations of each beam (the K best of all K x V candidates are among them)."""
    max_tokens = _check_max_tokens(runner, max_tokens)
    if not 1 <= width <= runner.vocab_size:
        raise ValueError(f"beam width must be in [1, {runner.vocab_size}], got {width}")
    B, K, eot = embeds.shape[0], width, runner.eot
    logits, session = runner.start(embeds)
    logits = _logits(logits)
    tok = _topk(logits, K)                                                       # B x K
    scores = np.take_along_axis(logits, tok, axis=-1) - _logsumexp(logits)[:, None]
    seqs, seq_lp = tok[..., None], scores[..., None]                             # B x K x 1
    finished = tok == eot
    session.reorder(np.repeat(np.arange(B), K))                                  # frames -> beams
    frame = np.arange(B)[:, None]                                                # B x 1
    # What a finished beam may continue with: end-of-text at no cost, nothing else.
    done_tok = np.full(K, eot)
    done_lp = np.full(K, -np.inf, dtype=np.float32)
    done_lp[0] = 0.0
    for _ in range(1, max_tokens):
        if finished.all():
            break
        logits = _logits(session.step(seqs[:, :, -1].reshape(B * K).astype(np.int64))).reshape(B, K, -1)
        cand_tok = _topk(logits, K)                                              # B x K x K
        cand_lp = np.take_along_axis(logits, cand_tok, axis=-1) - _logsumexp(logits)[..., None]
        cand_tok = np.where(finished[..., None], done_tok, cand_tok)
        cand_lp = np.where(finished[..., None], done_lp, cand_lp)
        total = (scores[..., None] + cand_lp).reshape(B, K * K)
        best = _topk(total, K)                                                   # B x K into K x K
        beam, j = best // K, best % K
        tok = cand_tok[frame, beam, j]
        step_lp = cand_lp[frame, beam, j]
        scores = total[frame, best]
        seqs = np.concatenate([seqs[frame, beam], tok[..., None]], axis=2)
        seq_lp = np.concatenate([seq_lp[frame, beam], step_lp[..., None]], axis=2)
        finished = finished[frame, beam] | (tok == eot)
        session.reorder((beam + frame * K).reshape(-1))
    return Sequences(seqs, scores.astype(np.float32), seq_lp.astype(np.float32), finished)
