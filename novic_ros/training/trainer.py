"""Text-only training of the object decoder (CLIP inversion).

The decoder never sees an image: it learns to map CLIP *text* embeddings of many prompts about a
noun back to the noun. Gaussian noise on the embeddings (renormalised) stands in for the
difference between text and image embeddings, so the decoder transfers to images zero-shot.

Flow: nouns -> prompts -> cached text embeddings -> teacher-forced training with noise ->
checkpoint in the core's format (novic_ros.core.checkpoint), ready for config/models.yaml.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..atomic_file import atomic_write
from ..core.checkpoint import ClipInfo, DecoderMeta, clip_fingerprint, load_decoder, save_decoder
from ..core.clip_encoder import ClipEncoder
from ..core.decoder import DecoderConfig, ObjectDecoder
from ..core.generation import greedy
from ..core.torch_runners import TorchCachedRunner
from ..core.label_tokens import LabelVocab
from ..paths import cache_dir
from .nouns_source import NounSet, load_nouns
from .prompts import PromptGenerator
from .text_embeddings import TextEmbeddingStore
from .train_config import TrainConfig

log = logging.getLogger(__name__)
STATE_FILE = 'train_state.pt'
LOG_FILE = 'train_log.csv'
IGNORE = -100


@dataclass
class TrainData:
    nouns: NounSet
    vocab: LabelVocab
    embeds: torch.Tensor          # N x E float16, unit norm
    targets: torch.Tensor         # N noun indices
    tokens: torch.Tensor          # num_nouns x T target tokens (end-of-text, then IGNORE)
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    texts: list[str]


def add_noise(embeds: torch.Tensor, scale: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Unit embeddings + Gaussian noise of expected norm `scale`, renormalised (the NOVIC recipe)."""
    if scale <= 0:
        return embeds
    noise = torch.randn(embeds.shape, generator=gen, device=embeds.device, dtype=embeds.dtype)
    return F.normalize(embeds + noise * (scale / math.sqrt(embeds.shape[-1])), dim=-1)


def prepare_data(encoder: ClipEncoder, cfg: TrainConfig, progress: bool = True,
                 cache_root: str | os.PathLike | None = None) -> TrainData:
    nouns = load_nouns(cfg.nouns, cfg.max_nouns)
    max_label_tokens = cfg.decoder.max_tokens - 1          # room for end-of-text
    vocab_all = LabelVocab.from_labels(nouns.labels)
    keep = [i for i, l in enumerate(nouns.labels) if len(vocab_all.encode(l)) - 1 <= max_label_tokens]
    if len(keep) < len(nouns.labels):
        log.info("dropping %d nouns longer than %d tokens", len(nouns.labels) - len(keep), max_label_tokens)
        nouns = nouns.subset(keep)
    vocab = LabelVocab.from_labels(nouns.labels)
    gen = PromptGenerator(nouns.labels, nouns.hypernyms, plural=nouns.plural, seed=cfg.seed)
    prompts = gen.prompts(cfg.prompts_per_noun)
    texts = [p.text for p in prompts]
    targets = torch.tensor([p.target for p in prompts])
    root = Path(cache_root) if cache_root else cache_dir() / 'text-embeddings'
    key = f"{encoder.spec.model.rsplit('/', 1)[-1].replace(':', '_')}-{clip_fingerprint(encoder.model)}"
    store = TextEmbeddingStore(root, key, texts)
    store.compute(encoder, cfg.text_batch_size, progress)
    embeds = store.load()
    tokens = torch.full((len(nouns.labels), cfg.decoder.max_tokens), IGNORE, dtype=torch.long)
    for i, label in enumerate(nouns.labels):
        t = vocab.encode(label)
        tokens[i, :len(t)] = torch.tensor(t)
    perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(cfg.seed))
    n_val = int(round(len(texts) * cfg.val_fraction))
    return TrainData(nouns, vocab, embeds, targets, tokens, perm[n_val:], perm[:n_val], texts)


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))
    return f


def batch_loss(decoder: ObjectDecoder, embeds: torch.Tensor, tokens: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Teacher-forced cross-entropy. tokens: B x T targets padded with IGNORE after end-of-text."""
    length = int((tokens != IGNORE).sum(1).max())
    tgt = tokens[:, :length]                                             # B x L
    inp = tgt[:, :-1].clamp(min=0)                                       # inputs: targets shifted right
    logits = decoder(embeds, inp)                                        # B x L x V
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=IGNORE,
                           label_smoothing=smoothing)


@torch.no_grad()
def evaluate(decoder: ObjectDecoder, data: TrainData, device, max_items: int = 4096) -> dict:
    """Validation loss and text-inversion accuracy (greedy output == target noun) on held-out prompts."""
    decoder.eval()
    idx = data.val_idx[:max_items]
    if len(idx) == 0:
        return {}
    emb = data.embeds[idx].float().to(device)
    tok = data.tokens[data.targets[idx]].to(device)
    loss = float(batch_loss(decoder, emb, tok, 0.0))
    seqs = greedy(TorchCachedRunner(decoder, data.vocab.eot), emb)
    out = [data.vocab.decode(t[0]) for t in seqs.tokens]
    acc = float(np.mean([o == data.nouns.labels[int(t)] for o, t in zip(out, data.targets[idx])]))
    decoder.train()
    return {'val_loss': round(loss, 4), 'val_inversion_acc': round(acc, 4)}


def _meta(encoder: ClipEncoder, dec_cfg: DecoderConfig, cfg: TrainConfig, data: TrainData, extra: dict) -> DecoderMeta:
    centroid = data.embeds[data.train_idx].float().mean(0)   # not renormalised: the shift is between means
    training = {'nouns': cfg.nouns, 'num_nouns': len(data.nouns.labels), 'num_prompts': len(data.texts),
                'prompts_per_noun': cfg.prompts_per_noun, 'noise': cfg.noise, 'steps': cfg.steps,
                'batch_size': cfg.batch_size, 'text_only': True, 'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
                # Mean of the training text embeddings, for the optional mean shift (modality_gap.py).
                'text_centroid': [round(float(x), 6) for x in centroid], **extra}
    return DecoderMeta(decoder=dec_cfg, clip=ClipInfo(encoder.spec.model, encoder.spec.pretrained, encoder.embed_dim,
                                                      clip_fingerprint(encoder.model)), training=training)


def train_decoder(encoder: ClipEncoder, cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                  progress: bool = True, cache_root: str | os.PathLike | None = None,
                  data: TrainData | None = None, extra_summary: dict | None = None) -> Path:
    """Train a decoder for `encoder` on text only and write it to out_dir. Returns out_dir.

    Checkpoints every cfg.checkpoint_every steps and on Ctrl-C (then re-raises KeyboardInterrupt);
    with resume=True, continues from out_dir/train_state.pt."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = encoder.device
    torch.manual_seed(cfg.seed)
    data = data or prepare_data(encoder, cfg, progress, cache_root)
    h = cfg.decoder
    dec_cfg = DecoderConfig(embed_dim=encoder.embed_dim, vocab_size=len(data.vocab), width=h.width, layers=h.layers,
                            heads=h.heads, mlp_ratio=h.mlp_ratio, prefix_len=h.prefix_len, max_tokens=h.max_tokens,
                            dropout=h.dropout)
    decoder = ObjectDecoder(dec_cfg).to(device).train()
    decay = [p for n, p in decoder.named_parameters() if p.ndim >= 2 and 'embedding' not in n]
    other = [p for n, p in decoder.named_parameters() if not (p.ndim >= 2 and 'embedding' not in n)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                             {'params': other, 'weight_decay': 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    gen = torch.Generator().manual_seed(cfg.seed)
    start = 0
    if resume and (out / STATE_FILE).is_file():
        state = torch.load(out / STATE_FILE, map_location=device, weights_only=False)
        if state['config'] != cfg.to_dict() or state['num_prompts'] != len(data.texts):
            raise ValueError(f"cannot resume from {out / STATE_FILE}: it was written with another config or data; "
                             "use a new output folder or drop --resume")
        loaded, _, _ = load_decoder(out, device)
        decoder.load_state_dict(loaded.state_dict())
        opt.load_state_dict(state['optimizer'])
        sched.load_state_dict(state['scheduler'])
        gen.set_state(state['generator'])
        start = state['step']
        log.info("resuming from step %d", start)
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if device.type == 'cuda' else torch.autocast('cpu', enabled=False)
    embeds = data.embeds.to(device)
    tokens = data.tokens.to(device)
    targets = data.targets.to(device)
    train_idx = data.train_idx.to(device)
    log_path = out / LOG_FILE
    new_log = start == 0 or not log_path.is_file()
    log_file = open(log_path, 'w' if new_log else 'a', newline='')
    writer = csv.writer(log_file)
    if new_log:
        writer.writerow(['step', 'loss', 'lr', 'val_loss', 'val_inversion_acc', 'seconds'])
    t0, losses, metrics, step = time.time(), [], {}, start

    def checkpoint(step_done: int):
        save_decoder(out, decoder, data.vocab, _meta(encoder, dec_cfg, cfg, data,
                                                     {'step': step_done, **(extra_summary or {}), **metrics}))
        buf = io.BytesIO()
        torch.save({'step': step_done, 'optimizer': opt.state_dict(), 'scheduler': sched.state_dict(),
                    'generator': gen.get_state(), 'config': cfg.to_dict(), 'num_prompts': len(data.texts)}, buf)
        atomic_write(out / STATE_FILE, buf.getvalue())

    bar = tqdm(range(start, cfg.steps), desc='decoder', disable=not progress, initial=start, total=cfg.steps,
               mininterval=2)
    try:
        for step in bar:
            pick = train_idx[torch.randint(len(train_idx), (cfg.batch_size,), generator=gen).to(device)]
            emb = add_noise(embeds[pick].float(), cfg.noise)
            with amp:
                loss = batch_loss(decoder, emb, tokens[targets[pick]], cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(decoder.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            losses.append(loss.item())
            done = step + 1
            if done % cfg.eval_every == 0 or done == cfg.steps:
                metrics = evaluate(decoder, data, device)
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", **metrics)
            if done % cfg.log_every == 0 or done == cfg.steps:
                writer.writerow([done, round(float(np.mean(losses[-cfg.log_every:])), 4), f"{sched.get_last_lr()[0]:.3g}",
                                 metrics.get('val_loss', ''), metrics.get('val_inversion_acc', ''),
                                 round(time.time() - t0, 1)])
                log_file.flush()
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                checkpoint(done)
    except KeyboardInterrupt:
        log.warning("interrupted at step %d: saving a checkpoint to %s (continue with --resume)", step, out)
        checkpoint(step)
        raise
    finally:
        log_file.close()
    metrics = {**metrics, 'train_seconds': round(time.time() - t0, 1), 'final_loss': round(float(np.mean(losses[-50:])), 4)
               if losses else None}
    checkpoint(cfg.steps)
    return out
