"""bench/gpu/host_probe.py: what the host did while a benchmark timed a reply (session 31:
a later decoder in one process lost ~6 % between its kernels)."""

from __future__ import annotations

import gc

import torch

from bench.gpu.host_probe import HostProbe


def test_it_counts_the_collections_inside_the_block_only() -> None:
    gc.collect()
    with HostProbe() as probe:
        gc.collect()
        gc.collect()
    gc.collect()  # after the block: not counted
    row = probe.summary(2)
    assert probe.collections == 2 and row["gc_collections_per_call"] == 1.0
    assert row["gc_ms_per_call"] >= 0 and row["gc_tracked_objects"] > 0
    assert gc.callbacks.count(probe._on_gc) == 0  # its callback is gone


def test_allocator_counts_only_where_cuda_runs() -> None:
    with HostProbe() as probe:
        pass
    row = probe.summary(0)
    assert row["calls"] == 0 and row["gc_collections_per_call"] == 0
    allocator = {k for k in row if k.startswith("num_")}
    if torch.cuda.is_available():
        assert allocator == {
            "num_device_alloc_per_call",
            "num_device_free_per_call",
            "num_alloc_retries_per_call",
        }
    else:
        assert not allocator
