"""torchrun / DDP helpers: one process per device, rank 0 logs, validates and saves.

`torchrun --nproc_per_node=K -m edgepose train ...` sets RANK, LOCAL_RANK and WORLD_SIZE; without
them training is a single process. NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")  # noqa: RUF009 - immutable

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick this rank's device."""
    world = env_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    rank = int(os.environ.get("RANK", str(local)))
    use_cuda = device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local) if world > 1 or device == "cuda" else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return DistInfo(rank=rank, local_rank=local, world_size=world, device=dev)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
