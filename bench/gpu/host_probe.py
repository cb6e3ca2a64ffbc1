"""What the host did while a benchmark timed something: Python's garbage collections (how
many, how long) and the CUDA caching allocator's calls to the driver (``cudaMalloc`` /
``cudaFree``, and retries after freeing its cache).

Session 31 found the first reply decoder in a process ~6 % faster than the same decoder built
after it (line-3.6b on an H200: 372.7 against 352.6 and 349.6 tok/s), with the kernels'
device time unchanged: the extra time is between the kernels, on the host. These counts,
recorded next to each timing, say whether collections or allocations grow with it.

    with HostProbe() as probe:
        timed()
    row["host"] = probe.summary(calls)
"""

from __future__ import annotations

import gc
import time
from types import TracebackType
from typing import Any

import torch


class HostProbe:
    """Counts garbage collections (and their time) and the allocator's driver calls within
    a ``with`` block."""

    def __init__(self) -> None:
        self.collections = 0
        self.gc_s = 0.0
        self._gc_start = 0.0
        self._before: dict[str, int] = {}
        self.allocator: dict[str, int] = {}
        self.tracked = 0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.collections += 1
            self.gc_s += time.perf_counter() - self._gc_start

    @staticmethod
    def _allocator() -> dict[str, int]:
        if not torch.cuda.is_available():
            return {}
        stats = torch.cuda.memory_stats()
        keys = ("num_device_alloc", "num_device_free", "num_alloc_retries")
        return {k: int(stats.get(k, 0)) for k in keys}

    def __enter__(self) -> HostProbe:
        self.tracked = len(gc.get_objects())
        self._before = self._allocator()
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._on_gc)
        after = self._allocator()
        self.allocator = {k: after[k] - self._before.get(k, 0) for k in after}

    def summary(self, calls: int) -> dict[str, Any]:
        """The counts per call (``calls``: how many timed calls ran inside the block), and the
        objects the collector tracked when the block began."""
        n = max(calls, 1)
        out: dict[str, Any] = {
            "calls": calls,
            "gc_tracked_objects": self.tracked,
            "gc_collections_per_call": round(self.collections / n, 2),
            "gc_ms_per_call": round(1e3 * self.gc_s / n, 3),
        }
        out |= {f"{k}_per_call": round(v / n, 2) for k, v in self.allocator.items()}
        return out
