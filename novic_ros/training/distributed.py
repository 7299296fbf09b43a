"""Data-parallel training under `torchrun`: which rank this process is, its device, and the few
collective operations the trainer needs.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single process and every
collective is a no-op, so the trainer has one code path. GPUs talk over NCCL (rank r takes
cuda:LOCAL_RANK), CPUs over gloo.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..models.clip_encoder import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce in place (sum over ranks); returns the tensor."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is true on any rank."""
        if not self.active:
            return flag
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj):
        """`obj` as rank 0 has it (small Python objects: decisions every rank must share)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = DistContext()


def launched_by_torchrun() -> bool:
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def init_from_env(device: str) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (or none), and pick this rank's device.

    `device` is the user's request (auto, cpu, cuda, cuda:N). Under torchrun each rank takes
    cuda:LOCAL_RANK, so naming one GPU there is an error rather than eight ranks on one card."""
    if not launched_by_torchrun():
        return SINGLE, resolve_device(device)
    ctx = DistContext(int(os.environ['RANK']), int(os.environ['WORLD_SIZE']), int(os.environ.get('LOCAL_RANK', 0)))
    requested = resolve_device(device)
    if requested.type == 'cuda':
        if requested.index is not None:
            raise ValueError(f"--device {device} names one GPU, but torchrun started {ctx.world_size} ranks; "
                             "use --device cuda (rank r takes cuda:LOCAL_RANK)")
        if ctx.local_rank >= torch.cuda.device_count():
            raise ValueError(f"rank {ctx.rank} wants cuda:{ctx.local_rank} but this machine has "
                             f"{torch.cuda.device_count()} GPUs; start at most that many processes per node")
        dev = torch.device('cuda', ctx.local_rank)
        torch.cuda.set_device(dev)
        dist.init_process_group('nccl', device_id=dev)
    else:
        dev = requested
        dist.init_process_group('gloo')
    log.info("rank %d of %d on %s", ctx.rank, ctx.world_size, dev)
    return ctx, dev


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
