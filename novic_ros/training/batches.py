"""Training batches: which rows step t trains on, and getting them onto the device.

Step t's global batch is drawn from a generator seeded by (seed, t) alone. Every rank draws the
same global batch and takes its slice, so W ranks train on exactly the rows (and noise) one
process would, and a run resumed with another number of ranks continues the same stream: the
sampler has no state to save. Rows are gathered from the memory-mapped embeddings; on a GPU a
thread gathers the next batches into pinned memory while the device trains on this one.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from .data_split import HeldOut
from .distributed import DistContext

PREFETCH_BATCHES = 4        # batches gathered ahead on a GPU; a few cover the jitter of the gather


@dataclass(frozen=True)
class Draw:
    rows: np.ndarray          # this rank's rows of the global batch
    targets: np.ndarray       # their noun indices
    noise_seed: int
    divisor: float            # target tokens in the global batch / world size (see batch_loss)
    length: int               # longest target among this rank's rows, end-of-text included


def per_rank_batch(batch_size: int, ctx: DistContext) -> int:
    if batch_size % ctx.world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {ctx.world_size} ranks torchrun started; "
                         "choose a batch_size that is a multiple of the number of processes")
    return batch_size // ctx.world_size


class BatchPlan:
    def __init__(self, split: HeldOut, per_noun: int, label_lengths: np.ndarray, batch_size: int, seed: int,
                 ctx: DistContext):
        self.split, self.per_noun, self.label_lengths = split, per_noun, label_lengths
        self.batch_size, self.seed, self.ctx = batch_size, seed, ctx
        per_rank = per_rank_batch(batch_size, ctx)
        self.part = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)

    def draw(self, step: int) -> Draw:
        rng = np.random.default_rng([self.seed, step])
        rows = self.split.train_rows(rng.integers(0, self.split.num_train, self.batch_size))
        targets = rows // self.per_noun
        # Loss = (sum of token losses on this rank) / divisor: DDP averages gradients over the
        # ranks, so dividing the global token count by the world size gives the gradient of the
        # global batch's mean token loss, as one process would compute it.
        divisor = float(self.label_lengths[targets].sum()) / self.ctx.world_size
        mine = targets[self.part]
        # Known here, the longest target spares the training step a GPU -> host read of it.
        return Draw(rows[self.part], mine, int(rng.integers(2 ** 62)), divisor, int(self.label_lengths[mine].max()))

    def noise(self, draw: Draw, gen: torch.Generator, embed_dim: int) -> torch.Tensor:
        """Standard normal noise for this rank's rows: the global batch's, sliced, so it does not depend
        on the number of ranks."""
        gen.manual_seed(draw.noise_seed)
        return torch.randn((self.batch_size, embed_dim), generator=gen, device=gen.device)[self.part]


@dataclass(frozen=True)
class Batch:
    embeds: torch.Tensor      # B x E float32 unit text embeddings (before noise), on the device
    tokens: torch.Tensor      # B x T target tokens
    draw: Draw


class BatchStream:
    """Batches for a range of steps on `device`, gathered from `embeds` (N x E, memory-mapped)."""

    def __init__(self, plan: BatchPlan, embeds: np.ndarray, tokens: torch.Tensor, device: torch.device,
                 prefetch: int | None = None):
        self.plan, self.embeds, self.tokens, self.device = plan, embeds, tokens.to(device), device
        self.prefetch = (PREFETCH_BATCHES if device.type == 'cuda' else 0) if prefetch is None else prefetch

    def _gather(self, step: int) -> tuple[torch.Tensor, torch.Tensor, Draw]:
        draw = self.plan.draw(step)
        order = np.argsort(draw.rows)                  # ascending reads through the memory map
        rows = np.empty((len(draw.rows), self.embeds.shape[1]), self.embeds.dtype)
        rows[order] = self.embeds[draw.rows[order]]
        emb, targets = torch.from_numpy(rows), torch.from_numpy(draw.targets)
        if self.device.type == 'cuda':
            emb, targets = emb.pin_memory(), targets.pin_memory()
        return emb, targets, draw

    def _to_device(self, item) -> Batch:
        emb, targets, draw = item
        emb = emb.to(self.device, non_blocking=True).float()
        return Batch(emb, self.tokens[targets.to(self.device, non_blocking=True)], draw)

    def batches(self, start: int, stop: int) -> Iterator[Batch]:
        if not self.prefetch:
            for step in range(start, stop):
                yield self._to_device(self._gather(step))
            return
        q: queue.Queue = queue.Queue(self.prefetch)
        done = threading.Event()

        def put(item) -> bool:
            while not done.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    pass
            return False

        def work():
            try:
                for step in range(start, stop):
                    if not put(self._gather(step)):
                        return
            except BaseException as e:  # handed to the training loop, which raises it
                put(e)

        worker = threading.Thread(target=work, name='batch-prefetch', daemon=True)
        worker.start()
        try:
            for _ in range(start, stop):
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                yield self._to_device(item)
        finally:
            done.set()
            worker.join()
