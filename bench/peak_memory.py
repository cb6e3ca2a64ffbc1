"""Peak memory of a piece of work, on the CPU or a CUDA device, for the memory benchmarks
(``bench/loss_memory.py``, ``bench/lora_backward.py``): each row runs in a fresh process so
the CPU's resident-set high-water mark measures that row alone."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def begin(device: str) -> int:
    """The level the peak is measured above: allocated CUDA memory (its peak reset), or the
    process's resident set (big tensors are mmapped, so they show)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return int(torch.cuda.memory_allocated())
    return rss_bytes()


def peak_above(device: str, before: int) -> int:
    """Bytes of the peak since :func:`begin` above its level (the CPU's high-water mark only
    rises: the first measurement in a process is the one that counts)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated()) - before
    return peak_rss_bytes() - before


@contextmanager
def kept_for_backward(model: Any, into: dict[int, int]) -> Iterator[dict[int, int]]:
    """Inside: the bytes autograd saves for backward go into ``into`` by storage (each counted
    once: shared tensors cost memory once), ``model``'s parameters left out. Exact, where a
    resident-set peak is not; with gradient checkpointing only the layers' inputs show
    (torch's own hooks take the rest)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: Any) -> Any:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            into[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield into


def child_row(cmd: list[str]) -> dict[str, Any]:
    """Run one row's process; its last stdout line is the row as JSON."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def write_record(
    path: Path | None, benchmark: str, device: str, rows: list[Any], **fields: Any
) -> dict[str, Any]:
    """The benchmark's record (name, device, machine, ``fields``, rows), written to ``path``."""
    machine = platform.processor() or platform.machine()
    record = {"benchmark": benchmark, "device": device, "machine": machine} | fields
    record["rows"] = rows
    if path:
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
