"""The memory trace's replay (bench/gpu/memory_trace.py): which blocks are alive at the peak."""

from __future__ import annotations

import json

from bench.gpu.memory_trace import alive_at_peak, differences, owner, traces_from_log


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


def _trace(peak: float, base: float, packages: dict, top: list) -> str:
    body = {"label": "", "baseline_mib": base, "peak_mib": peak, "events": 9}
    return "memtrace: " + json.dumps(body | {"alive_at_peak_mib": packages, "top": top})


def test_a_log_pairs_each_row_with_trl_and_gives_the_differences() -> None:
    """The lines ``train_speed.py --peers trl`` prints under BENCH_MEMTRACE=1: Serifu's rows
    first (trace, then ``done:``), then TRL's trace and the ``vs TRL`` lines."""
    log = [
        _trace(1100.0, 100.0, {"peft": 640.0, "torch": 60.0}, [["lora/bnb.py:549 forward", 640.0]]),
        "m lines serifu[liger] done: 10 tok/s, peak 1.07 GiB",
        "memtrace: failed: RuntimeError: no history",
        "m lines serifu[liger-autocast] done: 11 tok/s, peak 1.0 GiB",
        "some other line",
        _trace(1000.0, 98.0, {"peft": 384.0, "torch": 58.0}, [["lora/bnb.py:549 forward", 384.0]]),
        "m lines serifu[liger] 10 tok/s (MFU 1%, peak 1.07 GiB) vs TRL 9 tok/s (MFU 1%)",
        "m lines serifu[liger-autocast] 11 tok/s (MFU 1%, peak 1.0 GiB) vs TRL 9 tok/s",
    ]
    traces = traces_from_log(log)
    assert [t["side"] for t in traces] == ["serifu", "trl"]  # the failed trace pairs with nothing
    (d,) = differences(traces)
    assert (d["model"], d["workload"], d["row"]) == ("m", "lines", "liger")
    assert d["peak_mib"] == 100.0 and d["baseline_mib"] == 2.0 and d["trl_peak_mib"] == 1000.0
    assert d["packages"] == {"peft": 256.0}  # torch's +2 is under the 4 MiB floor
    assert d["frames"] == {"lora/bnb.py:549 forward": 256.0}
