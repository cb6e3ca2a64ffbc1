"""Every configuration of Serifu's GEMV kernels at one model's decode launches: µs a call,
whether each configuration's output has the same bits, and which one the autotuner keeps
when it is asked again (session 39).

Session 38 saw the default decoder's greedy tokens differ between two fresh processes of one
machine. Each GEMV configuration sums a row in its own order (``BLOCK_K`` lanes, then a
tree over them), so its float32 sums can differ in the last bits, and a bf16 output with them;
``triton.autotune`` times the configurations anew in every process and keeps the fastest, so
two processes can keep different ones. Here the decoder's own launches are recorded (one per
distinct autotune key, the model's real weights and folded sums), then for each: every
configuration run on one input (its output's digest, elements that differ from the first
configuration's), timed as 20 launches in a CUDA graph (median µs a launch over repeats), and
the autotuner re-run ``--retunes`` times from an empty cache (the configurations it kept).
``pinned`` is the configuration the product runs without ``SERIFU_GEMV_TUNE=1``
(:mod:`serifu.accel.gemv_tiles`), timed the same way; ``launches`` is how many a step.
Session 39's records hold earlier rules' ``pinned`` (the rule was fitted to them), and the
first model's also holds the kernel check's small products, its ``launches`` counted over two
steps.

    python3 bench/gpu/gemv_configs.py --models stablelm-beta-7b,gemma-3-270m --out $OUT/cfg.json
"""

from __future__ import annotations

import argparse
import collections
import gc
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import capture, random_model, versions
from bench.gpu.generate_speed import NEW, PROMPT


def _time(body: Callable[[], None], launches: int = 20, repeats: int = 15) -> float:
    """Median µs of one launch of ``body``, ``launches`` of them captured as one graph."""

    def many() -> None:
        for _ in range(launches):
            body()

    graph = capture(many)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / launches)
    return statistics.median(times)


def _record(tuner: Any) -> tuple[dict[tuple, tuple[tuple, dict]], collections.Counter, Any]:
    """Wraps ``tuner.run``: the first launch of each autotune key (its arguments) and how many
    launches each key had; returns them and the unwrapped ``run``."""
    seen: dict[tuple, tuple[tuple, dict]] = {}
    counts: collections.Counter = collections.Counter()
    run = tuner.run

    def recording(*args: Any, **kw: Any) -> Any:
        named = dict(zip(tuner.arg_names, args, strict=False)) | kw
        key = tuple(str(named.get(k)) for k in tuner.keys)
        key += tuple(str(a.dtype) for a in args if hasattr(a, "dtype"))
        seen.setdefault(key, (args, kw))
        counts[key] += 1
        return run(*args, **kw)

    tuner.run = recording
    return seen, counts, run


def _configs_at(tuner: Any, run: Any, args: tuple, kw: dict, retunes: int) -> dict[str, Any]:
    """One recorded launch under every configuration, the pinned one, and the autotuner."""
    named = dict(zip(tuner.arg_names, args, strict=False))
    x_name, y_name = tuner.arg_names[0], [n for n in tuner.arg_names if n == "y_ptr"][0]
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(named[x_name].shape, generator=g, device="cuda").to(named[x_name].dtype)
    y = torch.empty_like(named[y_name])
    new = [
        x if n == x_name else y if n == y_name else a
        for n, a in zip(tuner.arg_names, args, strict=False)
    ]
    rows: dict[str, Any] = {}
    outs = {}
    for cfg in tuner.configs:
        name = str(cfg.all_kwargs())

        def body(cfg: Any = cfg) -> None:
            tuner.fn.run(*new, **kw, **cfg.all_kwargs())

        try:
            body()
            torch.cuda.synchronize()
            outs[name] = y.clone()
            rows[name] = {"us": round(_time(body), 3)}
        except Exception as e:  # a configuration out of resources on this card
            rows[name] = {"error": f"{type(e).__name__}: {e}"[:200]}
    first = next(iter(outs.values()))
    for name, got in outs.items():
        rows[name]["sha"] = hashlib.sha256(got.float().cpu().numpy().tobytes()).hexdigest()[:12]
        rows[name]["differ_from_first"] = int((got != first).sum())
    picks = []
    os.environ["SERIFU_GEMV_TUNE"] = "1"  # the autotuner times every configuration
    for _ in range(retunes):
        tuner.cache.clear()
        run(*new, **kw)
        picks.append(str(tuner.cache[next(iter(tuner.cache))].all_kwargs()))
    del os.environ["SERIFU_GEMV_TUNE"]
    torch.cuda.synchronize()
    timed = {n: r["us"] for n, r in rows.items() if "us" in r}
    best = min(timed, key=timed.__getitem__)
    out: dict[str, Any] = {
        "configs": rows,
        "distinct_outputs": len({r["sha"] for r in rows.values() if "sha" in r}),
        "fastest": best,
        "fastest_us": timed[best],
        "autotune_picks": dict(collections.Counter(picks)),
    }
    from serifu.accel import gemv_kernels, uint4_gemv_kernels

    prune = gemv_kernels._pinned if tuner is gemv_kernels._gemv else uint4_gemv_kernels._pinned
    (pin,) = prune(tuner.configs, named, **kw)  # the product's one configuration of the shape
    out["pinned"] = str(pin.all_kwargs())
    out["pinned_us"] = timed.get(out["pinned"])
    return out


def _launches(model_id: str, weights: str, retunes: int) -> dict[str, Any]:
    from serifu.accel import gemv_kernels
    from serifu.accel.decode import StaticDecoder

    model = random_model(model_id, quantize=False).eval()
    if weights == "uint4":
        from bench.gpu.generate_speed import _uint4

        model = _uint4(model, table="bf16", kernel="serifu")  # no GemLite head needed
    from serifu.accel import uint4_gemv_kernels

    tuner = uint4_gemv_kernels._uint4_gemv if weights == "uint4" else gemv_kernels._gemv
    seen, counts, run = _record(tuner)
    try:
        dec = StaticDecoder(model, max_len=PROMPT + NEW + 8, batch_size=1, graph=False)
        seen.clear()  # the kernel check's small products (the first decoder on a card)
        counts.clear()
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, model.config.vocab_size, (1, PROMPT), generator=g).cuda()
        list(dec.generate(ids, torch.ones_like(ids), max_new_tokens=3))  # two one-row steps
    finally:
        tuner.run = run
    steps = 2
    rows: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for key, (args, kw) in seen.items():
        rows[" ".join(key)] = {"launches": counts[key] // steps}
        rows[" ".join(key)] |= _configs_at(tuner, run, args, kw, retunes)
    per_token = {
        what: round(sum(r["launches"] * (r[what] or 0) for r in rows.values()), 1)
        for what in ("fastest_us", "pinned_us")
    }
    del dec, model
    gc.collect()
    torch.cuda.empty_cache()
    return {
        "keys": rows,
        "us_a_token": per_token,
        "keys_with_configs_that_differ": sum(r["distinct_outputs"] > 1 for r in rows.values()),
        "keys_whose_autotune_moved": sum(len(r["autotune_picks"]) > 1 for r in rows.values()),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default="stablelm-beta-7b")
    ap.add_argument("--weights", choices=("bf16", "uint4"), default="bf16")
    ap.add_argument("--retunes", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    record: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(),
        "versions": versions(),
        "weights": args.weights,
        "models": {},
    }
    for model_id in args.models.split(","):
        try:
            record["models"][model_id] = _launches(model_id, args.weights, args.retunes)
        except Exception as e:
            record["models"][model_id] = {"error": f"{type(e).__name__}: {e}"[:500]}
        args.out.write_text(json.dumps(record, indent=1))
        r = record["models"][model_id]
        print(model_id, {k: v for k, v in r.items() if k != "keys"}, flush=True)


if __name__ == "__main__":
    main()
