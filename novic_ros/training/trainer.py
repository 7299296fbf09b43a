"""Text-only training of the object decoder (CLIP inversion).

The decoder never sees an image: it learns to map CLIP *text* embeddings of many prompts about a
noun back to the noun. Gaussian noise on the embeddings (renormalised) stands in for the
difference between text and image embeddings, so the decoder transfers to images zero-shot.

Flow: nouns -> prompt rows -> cached, memory-mapped text embeddings (train_data.py) ->
teacher-forced training with noise, data-parallel under torchrun (batches.py, distributed.py) ->
checkpoint in the core's format (novic_ros.models.checkpoint) plus train_state.pt to resume.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..models.checkpoint import ClipInfo, DecoderMeta, clip_fingerprint, load_decoder, save_decoder
from ..models.clip_encoder import ClipEncoder
from ..models.decoder import ObjectDecoder
from ..core.generation import greedy
from ..models.torch_runners import TorchCachedRunner
from .batches import Batch, BatchPlan, BatchStream, per_rank_batch
from .distributed import SINGLE, DistContext
from .stop_signals import StopSignals
from .train_config import TrainConfig
from .train_data import IGNORE, TrainData, load_labels, prepare_data
from .train_log import LOG_FILE, TrainLog
from .train_state import STATE_FILE, TrainState, check_fresh_start, check_same_inputs, save_state, state_for_resume

__all__ = ['IGNORE', 'LOG_FILE', 'STATE_FILE', 'TrainingStopped', 'add_noise', 'batch_loss', 'evaluate',
           'prepare_data', 'train_decoder']

log = logging.getLogger(__name__)
ADAM_BETAS = (0.9, 0.98)    # a shorter second-moment memory than torch's 0.999, usual for transformers
STOP_CHECK_EVERY = 10       # steps between the ranks agreeing on a stop signal (one tiny all-reduce)
EVAL_BATCH = 512            # held-out prompts per evaluation batch (bounds the logits' memory)


class TrainingStopped(Exception):
    """A stop signal ended training after a checkpoint was written."""

    def __init__(self, signum: int, step: int, out: Path):
        super().__init__(f"stopped by signal {signum} at step {step}; checkpoint in {out} (continue with --resume)")
        self.signum, self.step, self.out = signum, step, out


def add_noise(embeds: torch.Tensor, scale: float, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Unit embeddings + Gaussian noise of expected norm `scale`, renormalised (the NOVIC recipe).
    `noise` is standard normal of the same shape (drawn here when not given)."""
    if scale <= 0:
        return embeds
    noise = torch.randn_like(embeds) if noise is None else noise
    return F.normalize(embeds + noise * (scale / math.sqrt(embeds.shape[-1])), dim=-1)


def batch_loss(decoder, embeds: torch.Tensor, tokens: torch.Tensor, smoothing: float,
               divisor: float | None = None, length: int | None = None) -> torch.Tensor:
    """Teacher-forced cross-entropy. tokens: B x T targets padded with IGNORE after end-of-text.
    The mean over target tokens, or their sum / `divisor` (data-parallel steps, see BatchPlan.draw).
    `length`: the longest target (end-of-text included), when the caller knows it."""
    length = length or int((tokens != IGNORE).sum(1).max())
    tgt = tokens[:, :length]                                             # B x L
    inp = tgt[:, :-1].clamp(min=0)                                       # inputs: targets shifted right
    logits = decoder(embeds, inp)                                        # B x L x V
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=IGNORE,
                           label_smoothing=smoothing, reduction='mean' if divisor is None else 'sum')
    return loss if divisor is None else loss / divisor


@torch.no_grad()
def evaluate(decoder, data: TrainData, device) -> dict:
    """Validation loss and text-inversion accuracy (greedy output == target noun) on held-out prompts."""
    if len(data.val_targets) == 0:
        return {}
    decoder.eval()
    labels = data.labels
    loss_sum, correct = 0.0, 0
    for start in range(0, len(data.val_targets), EVAL_BATCH):
        emb = data.val_embeds[start:start + EVAL_BATCH].float().to(device)
        targets = data.val_targets[start:start + EVAL_BATCH]
        tok = labels.tokens[targets].to(device)
        loss_sum += float(batch_loss(decoder, emb, tok, 0.0, divisor=1.0))
        seqs = greedy(TorchCachedRunner(decoder, labels.vocab.eot), emb)
        correct += sum(labels.vocab.decode(t[0]) == labels.nouns.labels[int(n)]
                       for t, n in zip(seqs.tokens, targets))
    decoder.train()
    count = len(data.val_targets)
    tokens = int(labels.label_lengths[data.val_targets.numpy()].sum())
    return {'val_loss': round(loss_sum / tokens, 4), 'val_inversion_acc': round(correct / count, 4)}


def lr_schedule(cfg: TrainConfig):
    """Linear warm-up, then cosine decay to zero at cfg.steps (a resume with more steps stretches it)."""
    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def build_optimizer(decoder: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on embeddings, biases or norms)."""
    def decays(name: str, p: torch.Tensor) -> bool:
        return p.ndim >= 2 and 'embedding' not in name
    named = list(decoder.named_parameters())
    groups = [{'params': [p for n, p in named if decays(n, p)], 'weight_decay': cfg.weight_decay},
              {'params': [p for n, p in named if not decays(n, p)], 'weight_decay': 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=ADAM_BETAS, fused=device.type == 'cuda')


class RunningLoss:
    """Sums step losses on the device: reading one back waits for the GPU, so that happens once per log row."""

    def __init__(self, device: torch.device):
        self.total = torch.zeros((), device=device)
        self.steps = 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += loss
        self.steps += 1

    def take(self, ctx: DistContext) -> float | None:
        """Mean loss over the steps since the last take, over all ranks (a collective call)."""
        if not self.steps:
            return None
        total = ctx.sum_(self.total.clone())
        mean = float(total) / (self.steps * ctx.world_size)
        self.total.zero_()
        self.steps = 0
        return mean


class Trainer:
    """One training run: the decoder, its optimiser and schedule, and the loop."""

    def __init__(self, encoder: ClipEncoder, cfg: TrainConfig, data: TrainData, out: Path, ctx: DistContext,
                 state: TrainState | None):
        self.encoder, self.cfg, self.data, self.out, self.ctx = encoder, cfg, data, out, ctx
        self.device = device = encoder.device
        torch.manual_seed(cfg.seed)
        self.decoder = ObjectDecoder(cfg.decoder.config(encoder.embed_dim, len(data.labels.vocab))).to(device).train()
        self.optimizer = build_optimizer(self.decoder, cfg, device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_schedule(cfg))
        self.start, self.seconds_before, self.resumed = 0, 0.0, state is not None
        if state is not None:
            self._restore(state)
        self.model = self.decoder if not ctx.active else DistributedDataParallel(
            self.decoder, device_ids=[device.index] if device.type == 'cuda' else None)
        labels = data.labels
        self.plan = BatchPlan(data.split, labels.rows.per_noun, labels.label_lengths, cfg.batch_size, cfg.seed, ctx)
        self.stream = BatchStream(self.plan, data.embeds, labels.tokens, device)
        self.noise_gen = torch.Generator(device)
        self.amp = (lambda: torch.autocast('cuda', dtype=torch.bfloat16)) if device.type == 'cuda' \
            else contextlib.nullcontext
        self.metrics: dict = {}
        self.clip_fingerprint = clip_fingerprint(encoder.model)
        self._t0 = time.monotonic()

    def _restore(self, state: TrainState) -> None:
        loaded, _, _ = load_decoder(self.out, self.device)
        self.decoder.load_state_dict(loaded.state_dict())
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.start, self.seconds_before = state.step, state.seconds
        log.info("resuming from step %d (written by %d rank(s))", state.step, state.world_size)

    def seconds(self) -> float:
        return self.seconds_before + time.monotonic() - self._t0

    def train_step(self, batch: Batch) -> torch.Tensor:
        noise = self.plan.noise(batch.draw, self.noise_gen, batch.embeds.shape[1]) if self.cfg.noise > 0 else None
        emb = add_noise(batch.embeds, self.cfg.noise, noise)
        with self.amp():
            loss = batch_loss(self.model, emb, batch.tokens, self.cfg.label_smoothing, batch.draw.divisor,
                              batch.draw.length)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.decoder.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    def save(self, step: int, summary: dict | None = None) -> None:
        """Checkpoint (decoder + train_state.pt); rank 0 writes, the other ranks go on."""
        if not self.ctx.is_main:
            return
        save_decoder(self.out, self.decoder, self.data.labels.vocab, self._meta(step, summary or {}))
        save_state(
            self.out,
            TrainState(
                step,
                self.cfg.to_dict(),
                self.clip_fingerprint,
                self.data.labels.rows.fingerprint,
                self.ctx.world_size,
                round(self.seconds(), 1),
                self.optimizer.state_dict(),
                self.scheduler.state_dict(),
            ),
        )

    def _meta(self, step: int, summary: dict) -> DecoderMeta:
        cfg, data, enc = self.cfg, self.data, self.encoder
        training = {'nouns': cfg.nouns, 'num_nouns': len(data.labels.nouns.labels), 'num_prompts': data.num_prompts,
                    'prompts_per_noun': cfg.prompts_per_noun, 'noise': cfg.noise, 'steps': cfg.steps,
                    'batch_size': cfg.batch_size, 'world_size': self.ctx.world_size, 'text_only': True,
                    'date': datetime.now(timezone.utc).isoformat(timespec='seconds'), 'config': cfg.to_dict(),
                    # Mean of the training text embeddings, for the optional mean shift (modality_gap.py).
                    'text_centroid': [round(float(x), 6) for x in data.centroid],
                    'step': step, **self.metrics, **summary}
        return DecoderMeta(decoder=self.decoder.cfg, training=training,
                           clip=ClipInfo(enc.spec.model, enc.spec.pretrained, enc.embed_dim, self.clip_fingerprint))

    def _stop_requested(self, stop: StopSignals, step: int) -> bool:
        if not self.ctx.active:
            return stop.received is not None
        return step % STOP_CHECK_EVERY == 0 and self.ctx.any(stop.received is not None, self.device)

    def run(self, progress: bool) -> None:
        cfg, ctx = self.cfg, self.ctx
        running, step = RunningLoss(self.device), self.start
        last_loss, window = None, (self.start, time.monotonic())
        bar = tqdm(total=cfg.steps, initial=self.start, desc='decoder', unit='step', mininterval=2,
                   disable=not (progress and ctx.is_main))
        train_log = TrainLog(self.out / LOG_FILE, self.start if self.resumed else None) if ctx.is_main else None
        try:
            with StopSignals() as stop, contextlib.closing(self.stream.batches(self.start, cfg.steps)) as batches:
                for batch in batches:
                    running.add(self.train_step(batch))
                    step += 1
                    bar.update()
                    if ctx.is_main and (step % cfg.eval_every == 0 or step == cfg.steps):
                        self.metrics = evaluate(self.decoder, self.data, self.device)
                    if step % cfg.log_every == 0 or step == cfg.steps:
                        last_loss = running.take(ctx)
                        now = time.monotonic()
                        rate = (step - window[0]) * cfg.batch_size / max(now - window[1], 1e-9)
                        window = (step, now)
                        if train_log is not None:
                            train_log.write(
                                step=step,
                                loss=round(last_loss, 4),
                                lr=f"{self.scheduler.get_last_lr()[0]:.3g}",
                                seconds=round(self.seconds(), 1),
                                samples_per_s=round(rate),
                                **self.metrics,
                            )
                        bar.set_postfix(loss=f"{last_loss:.3f}", **self.metrics)
                    if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                        self.save(step)
                    if step < cfg.steps and self._stop_requested(stop, step):
                        log.warning(
                            "signal %d: saving a checkpoint at step %d to %s", stop.received or 0, step, self.out
                        )
                        self.save(step)
                        ctx.barrier()
                        raise TrainingStopped(stop.received or 0, step, self.out)
        except KeyboardInterrupt:
            log.warning("interrupted at step %d: saving a checkpoint to %s (continue with --resume)", step, self.out)
            self.save(step)
            raise
        finally:
            bar.close()
            if train_log is not None:
                train_log.close()
        self.save(cfg.steps, {'train_seconds': round(self.seconds(), 1),
                              'final_loss': round(last_loss, 4) if last_loss is not None else None})
        ctx.barrier()                  # every rank returns once the final checkpoint is on disk


def train_decoder(encoder: ClipEncoder, cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                  progress: bool = True, cache_root: str | os.PathLike | None = None,
                  data: TrainData | None = None, ctx: DistContext = SINGLE, overwrite: bool = False) -> Path:
    """Train a decoder for `encoder` on text only and write it to out_dir. Returns out_dir.

    Checkpoints every cfg.checkpoint_every steps and on SIGTERM or SIGINT (then raises
    TrainingStopped); with resume=True, continues from out_dir/train_state.pt, checking first,
    before any heavy work, that it is the same run. A folder holding a trained decoder is refused
    unless `overwrite` (check_fresh_start). Under torchrun (`ctx`), every rank calls this."""
    out = Path(out_dir)
    state = state_for_resume(out, cfg) if resume else None
    if state is None:
        check_fresh_start(out, overwrite)
    per_rank_batch(cfg.batch_size, ctx)
    labels = data.labels if data is not None else load_labels(cfg)
    if state is not None:
        check_same_inputs(state, clip_fingerprint(encoder.model), labels.rows.fingerprint, out)
        if state.step >= cfg.steps:
            log.warning("%s is already trained to step %d; raise --steps to train longer", out, state.step)
            return out
    out.mkdir(parents=True, exist_ok=True)
    data = data or prepare_data(encoder, cfg, progress, cache_root, ctx, labels)
    Trainer(encoder, cfg, data, out, ctx, state).run(progress)
    return out
