"""Where the device idles between CUDA graphs of many kernels (session 33).

Session 32 found ~7 gaps of 1.4-1.9 ms in each profiled reply, at the boundaries of the
reply decoder's 8-step graphs (~4,800 kernels each), and launching the next graph before
the host reads the last one did not remove them. This replays graphs of plain elementwise
kernels (no model) in four ways and reports, per replay, the wall time and the device's
idle time between kernels (gaps over 50 µs, as ``decode_levers`` bins them):

- ``sync``: replay, then wait for it (the product's greedy loop: one host sync a chunk);
- ``same``: the same graph replayed back to back, one wait at the end (launch ahead);
- ``alternate``: two graphs of the same work replayed in turn, one wait at the end;
- ``sync-alternate``: two graphs in turn, each waited for.

Also the host's time inside ``replay()`` with the device idle and with it busy.
If ``same`` shows the gaps and ``alternate`` does not, relaunching a graph that is still
running waits for it; if ``sync`` alone shows them, they are the host's launch.

    python3 bench/gpu/graph_gaps.py --out $OUT/graph-gaps.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import capture, versions
from bench.gpu.decode_levers import idle_gaps


def _graph(x: torch.Tensor, kernels: int) -> torch.cuda.CUDAGraph:
    def body() -> None:
        for _ in range(kernels):
            x.mul_(1.0000001)

    return capture(body)


def _pass(mode: str, graphs: list[torch.cuda.CUDAGraph], replays: int) -> None:
    for i in range(replays):
        g = graphs[i % 2] if mode in ("alternate", "sync-alternate") else graphs[0]
        g.replay()
        if mode.startswith("sync"):
            torch.cuda.synchronize()
    torch.cuda.synchronize()


def _profiled(mode: str, graphs: list[torch.cuda.CUDAGraph], replays: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        _pass(mode, graphs, replays)
    spans = [
        (float(ev.time_range.start), float(ev.time_range.end))
        for ev in prof.events()
        if ev.device_type == torch.autograd.DeviceType.CUDA
    ]
    return idle_gaps(spans, replays)  # per replay


def _host_replay_us(graph: torch.cuda.CUDAGraph, busy: torch.cuda.CUDAGraph | None) -> float:
    times = []
    for _ in range(7):
        torch.cuda.synchronize()
        if busy is not None:
            busy.replay()
        t = time.perf_counter()
        graph.replay()
        times.append((time.perf_counter() - t) * 1e6)
        torch.cuda.synchronize()
    return round(statistics.median(times), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--kernels", default="600,4800", help="kernels per graph, comma-separated")
    ap.add_argument("--elements", type=int, default=1 << 20)
    ap.add_argument("--replays", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    record: dict[str, Any] = {"versions": versions(), "elements": args.elements, "rows": []}
    for kernels in (int(k) for k in args.kernels.split(",")):
        x = torch.ones(args.elements, device="cuda", dtype=torch.bfloat16)
        graphs = [_graph(x, kernels), _graph(x, kernels)]
        row: dict[str, Any] = {
            "kernels": kernels,
            "host_replay_us_idle": _host_replay_us(graphs[0], None),
            "host_replay_us_busy_same": _host_replay_us(graphs[0], graphs[0]),
            "host_replay_us_busy_other": _host_replay_us(graphs[0], graphs[1]),
        }
        for mode in ("sync", "same", "alternate", "sync-alternate"):
            _pass(mode, graphs, args.replays)
            walls = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                _pass(mode, graphs, args.replays)
                walls.append((time.perf_counter() - t) * 1e6 / args.replays)
            gaps = _profiled(mode, graphs, args.replays)
            row[mode] = {"wall_us_per_replay": round(statistics.median(walls), 1)} | gaps
            print(kernels, mode, row[mode], flush=True)
        print(kernels, {k: v for k, v in row.items() if k.startswith("host")}, flush=True)
        record["rows"].append(row)
        del graphs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
