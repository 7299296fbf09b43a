"""The NOVIC reference's generation configurations (`beam_k10_vnone_gp_t1_a0` and the others its
`GenerationConfig.from_name` accepts), run over numpy arrays on any backend's decoder runner.

A name reads `METHOD_kK_vPRIOR_gGUIDE_tTEMP_aALPHA`: method `greedy` (k1) or `beam` (k = beam width
and number of outputs); vocabulary prior `none`, `tgtS` or `tokS` (scores relative to the prior
of each token over the vocabulary's nouns, per noun or per distinct token, scaled by S); guiding `n`
none, `p` plain (tokens that leave every guide noun's spelling score -inf, the others keep their
unguided log-probability), `r` renormalised over the allowed tokens; `t` divides the logits;
`a` length alpha (score / length^alpha). The search follows the reference step for step: compact
token 0 is end (and padding), the first token may not be end, finished beams emit end at no cost,
each step keeps the flat top k of beams x vocabulary, at most token_length - 1 tokens are generated
(a label that reaches that length ends there without an end-token term). A label's probability is
exp(score), not renormalised over the beam. The method `all` (score every guide noun) is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

DEFAULT_GENCFG = 'beam_k10_vnone_gp_t1_a0'


@dataclass(frozen=True)
class NovicGenConfig:
    name: str
    method: str            # greedy | beam
    topk: int
    vocab_prior: bool
    vocab_per_token: bool
    vocab_scaler: float
    guided: bool
    guide_renorm: bool
    temperature: float
    length_alpha: float

    @classmethod
    def from_name(cls, name: str) -> 'NovicGenConfig':
        """Parse a reference generation configuration name; ValueError naming the bad part."""
        parts = str(name).split('_')
        method, rest = parts[0], parts[1:]
        topk, prior, per_token, scaler, guided, renorm, tau, alpha = 0, False, False, 0.0, False, False, 1.0, 0.0
        for part in rest:
            key, value = part[:1], part[1:]
            try:
                if key == 'k':
                    topk = int(value)
                elif key == 'v':
                    if value != 'none':
                        m = re.fullmatch(r'(tok|tgt)(.+)', value)
                        if not m:
                            raise ValueError
                        prior, per_token, scaler = True, m.group(1) == 'tok', float(m.group(2))
                elif key == 'g':
                    if value not in ('n', 'p', 'r'):
                        raise ValueError
                    guided, renorm = value != 'n', value == 'r'
                elif key == 't':
                    tau = float(value)
                elif key == 'a':
                    alpha = float(value)
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(f"generation configuration {name!r}: cannot read part {part!r} "
                                 f"(expected e.g. {DEFAULT_GENCFG})") from None
        if method == 'all':
            raise ValueError(f"generation configuration {name!r}: method 'all' (scoring every guide noun) is not "
                             "supported; use beam with guiding, e.g. beam_k10_vnone_gp_t1_a0")
        if method not in ('greedy', 'beam'):
            raise ValueError(f"generation configuration {name!r}: method {method!r} is not greedy or beam")
        if not 1 <= topk <= 64:
            raise ValueError(f"generation configuration {name!r}: k must be in [1, 64], got {topk}")
        if method == 'greedy' and (topk != 1 or prior):
            raise ValueError(f"generation configuration {name!r}: greedy needs k1 and no vocabulary prior")
        if not (np.isfinite(tau) and tau > 0) or not np.isfinite(alpha) or not np.isfinite(scaler):
            raise ValueError(f"generation configuration {name!r}: temperature must be > 0 and every number finite")
        return cls(name, method, topk, prior, per_token, scaler, guided, renorm, tau, alpha)


@dataclass(frozen=True)
class NovicResult:
    tokens: np.ndarray     # B x K x C compact ids, 0 after the end
    scores: np.ndarray     # B x K log-probability scores (length-normalised when alpha != 0), best first


def target_matrix(sequences: list[list[int]], token_length: int) -> np.ndarray:
    """W x token_length compact ids, end (0) padded: the reference's tokenised noun table."""
    out = np.zeros((len(sequences), token_length), dtype=np.int64)
    for i, s in enumerate(sequences):
        out[i, :len(s)] = s
    return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        out = x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
    return np.where(np.isnan(out), -np.inf, out).astype(np.float32)


def _allowed(targets: np.ndarray, col: int, mask: np.ndarray, V: int) -> np.ndarray:
    """B x H x V: 0 where some still-possible target has that token at `col`, -inf elsewhere."""
    B, H, _ = mask.shape
    out = np.full((B, H, V + 1), -np.inf, dtype=np.float32)
    idx = np.where(mask, V, targets[:, col][None, None, :])
    np.put_along_axis(out, idx, 0.0, axis=2)
    return out[:, :, :V]


def _prior(targets: np.ndarray, col: int, mask: np.ndarray, V: int, per_token: bool) -> np.ndarray:
    B, H, Z = mask.shape
    idx = np.where(mask, V, targets[:, col][None, None, :])
    counts = np.zeros((B, H, V + 1), dtype=np.float32)
    for b in range(B):
        for h in range(H):
            counts[b, h] = np.bincount(idx[b, h], minlength=V + 1)
    if per_token:
        probs = (counts[:, :, :V] > 0).astype(np.float32)
        with np.errstate(invalid='ignore', divide='ignore'):
            probs = probs / probs.sum(axis=2, keepdims=True)
    else:
        with np.errstate(invalid='ignore', divide='ignore'):
            probs = counts[:, :, :V] / (Z - counts[:, :, V:])
    with np.errstate(divide='ignore'):
        logp = np.log(probs)
    return np.where(np.isfinite(logp), logp, np.inf).astype(np.float32)


def novic_generate(runner, embeds, cfg: NovicGenConfig, token_length: int, guide: np.ndarray | None = None,
                   vocab: np.ndarray | None = None) -> NovicResult:
    """Run `cfg` on a decoder runner (generation.py's interface; compact id 0 must be end). `guide`
    (W x token_length) is required when cfg.guided, `vocab` (Z x token_length) for a vocabulary prior."""
    if cfg.guided and guide is None:
        raise ValueError(f"{cfg.name} is guided but no guide nouns were given")
    if cfg.vocab_prior and vocab is None:
        raise ValueError(f"{cfg.name} uses a vocabulary prior but no vocabulary was given")
    if runner.eot != 0:
        raise ValueError("NOVIC generation needs compact token 0 to be the end token")
    if cfg.method == 'greedy':
        return _greedy(runner, embeds, cfg, token_length, guide)
    return _beam(runner, embeds, cfg, token_length, guide, vocab)


def _greedy(runner, embeds, cfg, token_length, guide) -> NovicResult:
    G = token_length - 1
    B = embeds.shape[0]
    logits, session = runner.start(embeds)
    V = logits.shape[-1]
    gmask = np.zeros((B, 1, guide.shape[0]), dtype=bool) if cfg.guided else None
    done = np.zeros(B, dtype=bool)
    toks, lps, pads = [], [], []
    for c in range(G):
        logits = np.asarray(logits, dtype=np.float32)
        if cfg.guided:
            gs = _allowed(guide, c, gmask, V)[:, 0]
            tok = (gs + logits).argmax(axis=1)
            gmask |= (tok[:, None] != guide[None, :, c])[:, None, :]
        else:
            gs = None
            tok = logits[:, 1:].argmax(axis=1) + 1 if c == 0 else logits.argmax(axis=1)
        sl = logits / np.float32(cfg.temperature)
        if gs is not None and cfg.guide_renorm:
            sl = sl + gs
        lp = np.take_along_axis(_log_softmax(sl), tok[:, None], axis=1)[:, 0]
        pads.append(done.copy())
        toks.append(np.where(done, 0, tok))
        lps.append(np.where(done, np.float32(0), lp))
        done = done | (tok == 0)
        if done.all() or c == G - 1:
            break
        logits = session.step(tok.astype(np.int64))
    tokens = np.stack(toks, axis=1)
    pad = np.stack(pads, axis=1)
    score = np.stack(lps, axis=1).astype(np.float32).sum(axis=1)
    if cfg.length_alpha != 0:
        n = np.maximum((~pad).sum(axis=1), 1).astype(np.float32)
        score = score * n ** np.float32(-cfg.length_alpha)
    return NovicResult(tokens[:, None], score[:, None])


def _beam(runner, embeds, cfg, token_length, guide, vocab) -> NovicResult:
    G, H = token_length - 1, cfg.topk
    B = embeds.shape[0]
    first, session = runner.start(embeds)
    first = np.asarray(first, dtype=np.float32)
    V = first.shape[-1]
    frame = np.arange(B)[:, None]
    tokens = np.zeros((B, H, G), dtype=np.int64)
    pad = np.ones((B, H, G), dtype=bool)
    pad[:, 0, 0] = False
    score = np.full((B, H), -np.inf, dtype=np.float32)
    score[:, 0] = 0
    seq_len = np.zeros((B, H), dtype=np.float32)
    seq_len[:, 0] = 1
    gmask = None
    if cfg.guided:
        gmask = np.ones((B, H, guide.shape[0]), dtype=bool)
        gmask[:, 0] = False
    use_prior = cfg.vocab_prior and cfg.vocab_scaler != 0
    vocab_is_guide = use_prior and cfg.guided and np.array_equal(vocab, guide)
    vmask = None
    if use_prior and not vocab_is_guide:
        vmask = np.ones((B, H, vocab.shape[0]), dtype=bool)
        vmask[:, 0] = False
    session.reorder(np.repeat(np.arange(B), H))                  # frames -> B x H beams
    logits = np.repeat(first[:, None], H, axis=1)                # every beam starts from the embedding alone
    C = G
    for c in range(G):                                           # reference's C = c + 1
        logits = logits / np.float32(cfg.temperature)
        fin = pad[:, :, c]
        logits[:, :, 1:][fin] = -np.inf
        gs = None
        if cfg.guided:
            gs = _allowed(guide, c, gmask, V)
            gs[:, :, 0][fin] = 0
            if cfg.guide_renorm:
                logits = logits + gs
        scores = _log_softmax(logits)
        if use_prior:
            prior = _prior(guide, c, gmask, V, cfg.vocab_per_token) if vocab_is_guide else \
                _prior(vocab, c, vmask, V, cfg.vocab_per_token)
            prior[:, :, 0][fin] = 0
            scores = scores - np.float32(cfg.vocab_scaler) * prior
        scores = scores + score[:, :, None]
        if c == 0:
            scores[:, 0, 0] = -np.inf
        if gs is not None and not cfg.guide_renorm:
            scores = scores + gs
        flat = scores.reshape(B, H * V)
        if cfg.length_alpha == 0:
            rank = flat
        else:
            rank = (scores * (np.maximum(seq_len, 1) ** np.float32(-cfg.length_alpha))[:, :, None]).reshape(B, H * V)
        # Best first; ties keep the lower index (torch.topk leaves their order unspecified).
        top = np.argsort(-rank, axis=1, kind='stable')[:, :H]
        ranked = np.take_along_axis(rank, top, axis=1)
        score = np.take_along_axis(flat, top, axis=1)
        parent, tok = top // V, top % V
        tokens = tokens[frame, parent]
        tokens[:, :, c] = tok
        pad[:, :, :c + 1] = pad[frame, parent][:, :, :c + 1]
        if c == G - 1:
            break
        pad[:, :, c + 1] = (tok == 0) | pad[:, :, c]
        if pad[:, :, c + 1].all():
            C = c + 1
            break
        if gmask is not None:
            gmask = gmask[frame, parent] | (tok[:, :, None] != guide[None, None, :, c])
        if vmask is not None:
            vmask = vmask[frame, parent] | (tok[:, :, None] != vocab[None, None, :, c])
        if cfg.length_alpha != 0:
            seq_len = seq_len[frame, parent] + (~pad[:, :, c + 1])
        session.reorder((parent + frame * H).reshape(-1))
        logits = np.asarray(session.step(tok.reshape(-1).astype(np.int64)), dtype=np.float32).reshape(B, H, V)
    tokens, pad = tokens[:, :, :C], pad[:, :, :C]
    tokens[pad] = 0
    final = ranked if cfg.length_alpha != 0 else score
    return NovicResult(tokens, final.astype(np.float32))
