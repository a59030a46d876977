"""Many processes through ``torchrun``: one process per GPU (nccl) or per CPU worker (gloo).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address; a plain ``python -m``
run is a world of one and needs no process group.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(0, 1, resolve_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), chosen)


def teardown(*, wait_for_peers: bool):
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            # Rank 0 still writes the checkpoint when the others finish: without this barrier a rank
            # could tear gloo down under a connected peer and abort at exit ("terminate called ..."), seen in CI.
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over processes (identity in a single process)."""
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values)
    return values


def rank_and_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
