"""What is alive at a run's peak GPU memory, and where it was allocated (issue 15's memory
clause: Serifu's step peaks 2-4 % above TRL's outside the loss; this finds what the extra is).

Set ``BENCH_MEMTRACE=1`` and :func:`bench.gpu.common.peak_gib_reset` starts PyTorch's
allocator history; :func:`bench.gpu.common.peak_gib` then prints one ``memtrace:`` JSON
line: the memory allocated when recording began, the peak, and the blocks alive at the peak
grouped by the innermost Python frame outside torch (and by package). The history is
replayed here, so nothing large leaves the machine.

Run as a script on a saved log (or a results file of such traces), it pairs each Serifu
row's trace with TRL's on the same model and workload and prints where they differ:

    python3 bench/gpu/memory_trace.py memtrace.log [--out traces.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

ENV = "BENCH_MEMTRACE"
_baseline: list[int] = []
PACKAGES = ("serifu", "peft", "transformers", "liger_kernel", "trl", "accelerate", "bench")


def enabled() -> bool:
    return os.environ.get(ENV) == "1" and torch.cuda.is_available()


def start() -> None:
    """Record every allocation from now on (Python stacks only: cheap enough for a step)."""
    torch.cuda.memory._record_memory_history(
        enabled="all", context="alloc", stacks="python", max_entries=2_000_000, clear_history=True
    )
    _baseline[:] = [torch.cuda.memory_allocated()]


def owner(frames: list[dict[str, Any]]) -> tuple[str, str]:
    """The innermost frame outside torch's own files (``file:line function``), its package."""
    for f in frames:
        name = str(f.get("filename", ""))
        if "/torch/" in name or name.startswith("<") or not name:
            continue
        package = next((p for p in PACKAGES if f"/{p}/" in name), "other")
        short = "/".join(name.split("/")[-2:])
        return f"{short}:{f.get('line')} {f.get('name')}", package
    return "torch internals", "torch"


def alive_at_peak(events: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Replay allocator events: the highest net growth over the recording's start, and the
    blocks allocated since then that are alive at that moment. A freed block allocated before
    recording began lowers the running total too (it was part of the baseline)."""

    def replay(stop: int) -> tuple[int, int, dict[int, dict[str, Any]]]:
        live: dict[int, dict[str, Any]] = {}
        cur = best = best_at = 0
        for i, ev in enumerate(events[:stop]):
            if ev["action"] == "alloc":
                live[ev["addr"]] = ev
                cur += ev["size"]
            elif ev["action"] == "free_completed":
                cur -= ev["size"]
                live.pop(ev["addr"], None)
            if cur > best:
                best, best_at = cur, i
        return best, best_at, live

    best, best_at, _ = replay(len(events))
    if best == 0:
        return 0, []
    return best, list(replay(best_at + 1)[2].values())


def peak_breakdown(top: int = 15) -> dict[str, Any]:
    """The recorded history's peak and the blocks alive at it, grouped by where they came from."""
    snap = torch.cuda.memory._snapshot()
    torch.cuda.memory._record_memory_history(enabled=None)
    events = snap["device_traces"][torch.cuda.current_device()]
    baseline = _baseline[0] if _baseline else 0
    best, live = alive_at_peak(events)
    groups: dict[str, int] = defaultdict(int)
    packages: dict[str, int] = defaultdict(int)
    for ev in live:
        where, package = owner(ev.get("frames", []))
        groups[where] += ev["size"]
        packages[package] += ev["size"]
    mib = 2**20
    return {
        "baseline_mib": round(baseline / mib, 1),
        "peak_mib": round((baseline + best) / mib, 1),
        "events": len(events),
        "alive_at_peak_mib": {k: round(v / mib, 1) for k, v in sorted(packages.items())},
        "top": [
            [where, round(size / mib, 1)]
            for where, size in sorted(groups.items(), key=lambda kv: -kv[1])[:top]
        ],
    }


def report(label: str = "") -> None:
    """Print the breakdown as one ``memtrace:`` line (the logs come back from the machine)."""
    try:
        print("memtrace:", json.dumps({"label": label} | peak_breakdown(), ensure_ascii=False))
    except Exception as exc:  # a failed trace must not lose the run's numbers
        print(f"memtrace: failed: {type(exc).__name__}: {exc}")


RUN = re.compile(r"^(?P<model>\S+) (?P<workload>\S+) serifu\[(?P<row>[^\]]+)\]")


def traces_from_log(lines: list[str]) -> list[dict[str, Any]]:
    """Each ``memtrace:`` line with the run line that follows it: a Serifu row's ``done:``
    line, or (for TRL, traced inside ``trl_run``) the first ``vs TRL`` line after it."""
    out: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None
    for line in lines:
        if line.startswith("memtrace:"):
            body = line.removeprefix("memtrace:").strip()
            pending = None if body.startswith("failed") else json.loads(body)
        elif pending is not None and RUN.match(line) and (" done:" in line or " vs TRL " in line):
            side = "serifu" if " done:" in line else "trl"
            out.append({"trace": pending, "run": line.strip(), "side": side})
            pending = None
    return out


def differences(traces: list[dict[str, Any]], floor_mib: float = 4.0) -> list[dict[str, Any]]:
    """Serifu's trace minus TRL's, per Serifu row: peak, baseline, per package (complete) and
    per frame (of each side's top frames: a frame missing from one side's top counts 0 there,
    so small ones are approximate). Differences under ``floor_mib`` are left out."""
    trl = {}
    for t in traces:
        m = RUN.match(t["run"])
        if t["side"] == "trl" and m:
            trl[m["model"], m["workload"]] = t["trace"]
    rows = []
    for t in traces:
        m = RUN.match(t["run"])
        if t["side"] != "serifu" or not m or (m["model"], m["workload"]) not in trl:
            continue
        ours, theirs = t["trace"], trl[m["model"], m["workload"]]

        def delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
            diff = {k: round(a.get(k, 0.0) - b.get(k, 0.0), 1) for k in a.keys() | b.keys()}
            return dict(
                sorted(
                    ((k, v) for k, v in diff.items() if abs(v) >= floor_mib),
                    key=lambda kv: -abs(kv[1]),
                )
            )

        rows.append(
            {
                "model": m["model"],
                "workload": m["workload"],
                "row": m["row"],
                "peak_mib": round(ours["peak_mib"] - theirs["peak_mib"], 1),
                "trl_peak_mib": theirs["peak_mib"],
                "baseline_mib": round(ours["baseline_mib"] - theirs["baseline_mib"], 1),
                "packages": delta(ours["alive_at_peak_mib"], theirs["alive_at_peak_mib"]),
                "frames": delta(dict(ours["top"]), dict(theirs["top"])),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description="Serifu's peak minus TRL's, from memtrace lines")
    ap.add_argument("source", type=Path, help="a log with memtrace: lines, or a traces JSON")
    ap.add_argument("--out", type=Path, help="write the paired traces as JSON (results format)")
    args = ap.parse_args()
    text = args.source.read_text(encoding="utf-8")
    if args.source.suffix == ".json":
        traces = json.loads(text)["traces"]
    else:
        traces = traces_from_log(text.splitlines())
    if args.out:
        args.out.write_text(json.dumps({"traces": traces}, ensure_ascii=False, indent=1) + "\n")
    for d in differences(traces):
        share = d["peak_mib"] / d["trl_peak_mib"]
        print(
            f"{d['model']} {d['workload']} serifu[{d['row']}] - TRL: peak {d['peak_mib']:+.1f}"
            f" MiB ({share:+.1%}), baseline {d['baseline_mib']:+.1f}"
        )
        print("  packages:", ", ".join(f"{k} {v:+.1f}" for k, v in d["packages"].items()))
        print("  frames:  ", ", ".join(f"{k} {v:+.1f}" for k, v in d["frames"].items()))


if __name__ == "__main__":
    main()
