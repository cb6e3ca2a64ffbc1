"""The split-key decode attention's launch settings, swept at one model's shapes (session 33).

A reply step of stablelm-beta-7b spent ~240 µs a token in ``_split_kv_partial`` and
``_split_kv_combine`` (32 layers, one H100: ~5.9 + 1.5 µs a layer for ~0.2 MB of cache),
far above the cache's read time. Here 32 layers' calls (their own K/V, a boolean mask as the
decoder passes it) are captured as one CUDA graph per setting — keys per program
(``block_n``), programs aimed at (``programs``), warps a program and, since session 34, the
combine as its own kernel or inside the partial one (``fused``), and since session 37 the
step's key and value written by the kernel (``write``, :mod:`serifu.accel.kv_write`; ``write``
2, since session 38: the query and key rotated by it too, :mod:`serifu.accel.rope_fold`, at
angle 0 so the reference holds) — and replayed; µs per layer is the median over repeats,
next to torch's sdpa (cuDNN on sm90) in the same graph form.

    python3 bench/gpu/split_kv_sweep.py --out $OUT/split-kv-sweep.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import capture, versions


def _time_graph(body: Callable[[], None], replays: int, repeats: int) -> float:
    """Median µs of one replay of ``body`` captured as a graph."""
    graph = capture(body)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / replays)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=32)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--keys", type=int, default=416, help="the static cache's length")
    ap.add_argument("--filled", type=int, default=384, help="positions the mask lets in")
    ap.add_argument("--block-n", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--programs", type=int, nargs="+", default=[132, 264, 528])
    ap.add_argument("--warps", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument(
        "--fused",
        type=int,
        nargs="+",
        default=[0, 1],
        help="1: the combine inside the partial kernel (session 34), 0: its own kernel",
    )
    ap.add_argument(
        "--write",
        type=int,
        nargs="+",
        default=[0],
        help="1: the kernel also writes the step's key and value (serifu.accel.kv_write); "
        "2: and rotates the query and key first (serifu.accel.rope_fold)",
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from serifu.accel import split_kv, split_kv_kernels

    dev, bf = "cuda", torch.bfloat16
    q = torch.randn(1, args.heads, 1, args.dim, device=dev, dtype=bf)
    ks = [
        torch.randn(1, args.kv_heads, args.keys, args.dim, device=dev, dtype=bf)
        for _ in range(args.layers)
    ]
    vs = [torch.randn_like(k) for k in ks]
    mask = (torch.arange(args.keys, device=dev) < args.filled).view(1, 1, 1, args.keys)
    out = torch.empty(1, 1, args.heads, args.dim, device=dev, dtype=bf)
    # the step's key and value (written at the last position the mask lets in, every replay)
    kn, vn = (torch.randn(1, args.kv_heads, 1, args.dim, device=dev, dtype=bf) for _ in "kv")
    length = torch.tensor(args.filled, device=dev)
    angle0 = (
        torch.ones(1, 1, args.dim, device=dev, dtype=bf),
        torch.zeros(1, 1, args.dim, device=dev, dtype=bf),
    )
    for k, v in zip(ks, vs, strict=True):  # already there: writing rows keep the reference
        k[:, :, args.filled - 1], v[:, :, args.filled - 1] = kn[:, :, 0], vn[:, :, 0]
    scale = args.dim**-0.5
    ref = split_kv.split_attention_reference(q.float(), ks[0].float(), vs[0].float(), mask, scale)
    record: dict[str, Any] = {
        "versions": versions(),
        "shape": vars(args) | {"out": None},
        "rows": [],
    }

    def sdpa() -> None:
        for k, v in zip(ks, vs, strict=True):
            torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

    base = _time_graph(sdpa, 20, 5) / args.layers
    record["sdpa_us_per_layer"] = round(base, 2)
    print("sdpa", round(base, 2), flush=True)
    settings = itertools.product(args.block_n, args.programs, args.warps, args.fused, args.write)
    for block_n, programs, warps, fused, write in settings:
        splits, chunk = split_kv.plan(args.heads, args.keys, programs, block_n)
        kw = {"num_warps": warps, "fused": bool(fused), "new": (kn, vn, length) if write else None}
        kw["rope"] = angle0 if write == 2 else None

        def body(bn: int = block_n, s: int = splits, c: int = chunk, kw: dict = kw) -> None:
            for k, v in zip(ks, vs, strict=True):
                split_kv_kernels.launch(q, k, v, mask, out, scale, s, c, bn, **kw)

        try:
            us = _time_graph(body, 20, 5) / args.layers
            err = 0.0
            for _ in range(3):  # the fused kernel's counters are back at 0 after each launch
                out.zero_()
                split_kv_kernels.launch(
                    q, ks[0], vs[0], mask, out, scale, splits, chunk, block_n, **kw
                )
                torch.cuda.synchronize()
                err = max(err, float((out.float() - ref.float()).abs().max()))
        except Exception as exc:  # a setting Triton cannot compile
            print(block_n, programs, warps, fused, write, type(exc).__name__, exc, flush=True)
            continue
        row = {
            "block_n": block_n,
            "programs": programs,
            "warps": warps,
            "fused": fused,
            "write": write,
            "splits": splits,
            "us_per_layer": round(us, 2),
            "x_sdpa": round(base / us, 2),
            "max_err": round(err, 4),
        }
        record["rows"].append(row)
        print(row, flush=True)
    block = split_kv.block_for(args.dim)
    warps = split_kv.warps_for(block, split_kv.padded_width(args.dim))
    chosen = (block, split_kv.PROGRAMS, warps, int(split_kv.FUSED))
    record["best"] = min(record["rows"], key=lambda r: r["us_per_layer"])
    record["product"] = next(
        (
            r
            for r in record["rows"]
            if (r["block_n"], r["programs"], r["warps"], r["fused"]) == chosen and not r["write"]
        ),
        None,
    )
    print("best", record["best"], "the product's setting", chosen, record["product"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
