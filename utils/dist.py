"""Distributed data parallel set-up from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE).

``torchrun --nproc_per_node=N train.py ...`` sets those variables; a plain ``python train.py``
does not, and everything here then degrades to a single process (rank 0 of 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from utils.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its host."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when running under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints (rank 0)."""
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """Read torchrun's RANK / LOCAL_RANK / WORLD_SIZE (absent: a single process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise UserError(f"RANK/LOCAL_RANK/WORLD_SIZE environment variables must be integers ({exc})") from exc
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def init_distributed(info: DistInfo, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU) when ``info.enabled``.

    Returns the device this process trains on: ``cuda:<local_rank>`` for a CUDA run, else ``device``.
    """
    if not info.enabled:
        return device
    if device.type == "cuda":
        if info.local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {info.local_rank}: only {torch.cuda.device_count()} CUDA device(s) on this host"
            )
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return device


def cleanup_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op for a single process)."""
    if info.enabled:
        dist.barrier()


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's ``obj`` as a list indexed by rank (``[obj]`` for a single process)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def any_true(info: DistInfo, flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (so every rank takes the same branch)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
