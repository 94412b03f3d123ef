"""torchrun support: process-group setup, rank-0-only side effects, replica checks. No home-made layer."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..inference.device import pick_device


@dataclass(frozen=True)
class DistContext:
    """Where this process runs and which rank it is (rank 0 of 1 outside torchrun)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(requested_device: str = "auto") -> DistContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(requested_device)
    if world_size <= 1:
        return DistContext(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(device, dist.get_rank(), world_size, local_rank)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True when ``flag`` is true on any rank (so all ranks stop together)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def replicas_in_sync(ctx: DistContext, model: torch.nn.Module) -> bool:
    """Whether every rank holds bit-identical parameters (compared by a float64 checksum per tensor)."""
    if not ctx.distributed:
        return True
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(ctx.device)
    gathered = [torch.zeros_like(sums) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, sums)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])
