"""Data-parallel training on several GPUs of one host, launched by ``torchrun`` or
``accelerate launch`` (which set ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``).

Each rank runs the same step plan and takes every ``world``-th example of each step.
Only the LoRA weights train, so after backward their gradients are summed across ranks
in one flat all-reduce; the loss is divided by the global label count first, so the
update is exactly the single-GPU one. Rank 0 alone writes files and shows progress.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> str:
        return f"cuda:{self.local_rank}"


def init_distributed() -> Dist | None:
    """Join the process group when launched with WORLD_SIZE > 1; else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch
    import torch.distributed as tdist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    if not tdist.is_initialized():
        tdist.init_process_group(backend)
    return Dist(rank, world, local)


def shard(indices: Sequence[int], dist: Dist | None) -> list[int]:
    """This rank's examples of one step."""
    return list(indices) if dist is None else list(indices[dist.rank :: dist.world])


def all_sum(values: Sequence[float], device: str, dist: Dist | None) -> list[float]:
    """Sum small numbers (label counts, losses, tokens) over ranks."""
    if dist is None:
        return [float(v) for v in values]
    import torch
    import torch.distributed as tdist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def sum_gradients(params: Sequence[Any], dist: Dist | None) -> None:
    """Sum the trainable parameters' gradients over ranks (one flat all-reduce)."""
    if dist is None:
        return
    import torch
    import torch.distributed as tdist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    tdist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n


def barrier(dist: Dist | None) -> None:
    if dist is not None:
        import torch.distributed as tdist

        tdist.barrier()


def shutdown(dist: Dist | None) -> None:
    if dist is not None:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()
