"""The memory trace's replay (bench/gpu/memory_trace.py): which blocks are alive at the peak."""

from __future__ import annotations

from bench.gpu.memory_trace import alive_at_peak, owner


def _ev(action: str, addr: int, size: int, where: str = "/x/serifu/a.py") -> dict[str, object]:
    return {
        "action": action,
        "addr": addr,
        "size": size,
        "frames": [{"filename": where, "line": 1, "name": "f"}],
    }


def test_alive_at_peak_counts_frees_of_older_blocks_and_keeps_the_peak_set() -> None:
    events = [
        _ev("alloc", 1, 100),
        _ev("alloc", 2, 50),
        _ev("free_requested", 1, 100),  # not yet returned: still counts
        _ev("free_completed", 1, 100),
        _ev("free_completed", 99, 400),  # a block from before recording: the total drops
        _ev("alloc", 3, 300),  # net 50 - 400 + 300 < 150: not a new peak
        _ev("alloc", 4, 500),
        _ev("free_completed", 4, 500),
    ]
    best, live = alive_at_peak(events)
    assert best == 450  # 50 - 400 + 300 + 500
    assert sorted(ev["addr"] for ev in live) == [2, 3, 4]


def test_alive_at_peak_of_a_run_that_only_frees() -> None:
    assert alive_at_peak([_ev("free_completed", 7, 10)]) == (0, [])


def test_owner_skips_torch_frames() -> None:
    frames = [
        {"filename": "/site/torch/nn/functional.py", "line": 5, "name": "linear"},
        {"filename": "/site/peft/tuners/lora/layer.py", "line": 9, "name": "forward"},
    ]
    assert owner(frames) == ("lora/layer.py:9 forward", "peft")
    assert owner([]) == ("torch internals", "torch")
