"""Batch-1 replies against HF's peer with every contender alone in a fresh process.

Session 31 found two order effects inside one process (``decode_levers.py``): HF's peer ran
~6 % slower after Serifu's decoders than before them (one H100), and a process's first
decoder ran ~6 % faster than the same decoder built after it (H200), with the kernels' device
time unchanged. A ratio measured in one process therefore depends on who ran first. Here each
contender (``hf-static``, the peer; or one of ``decode_levers``'s variants) runs alone in its
own ``decode_levers.py`` process, round-robin over ``--rounds`` rounds (peer, variant 1,
variant 2, …, then again), so none inherits another's compiled code, graphs or cache. The
record keeps every process's row, each contender's median over the rounds, and each
variant's ratio to the peer's median (``x_hf``), with the spread of the per-round ratios.

    python3 bench/gpu/fresh_processes.py --model stablelm-beta-7b \
        --variants default,gemv-residual --rounds 3 --out $OUT/fresh.json

Since session 35 a 7B decoder (its prompt pass compiled too) takes ~2.5 minutes to build, so
one device call (600 s) holds two rounds at most. ``--merge A.json B.json …`` joins records of
back-to-back calls on one warm machine into one (their rounds in turn, one summary); it
refuses records of different models or cards (each row names its GPU). Two machines of one
kind can still differ (session 34: HF's peer ran 114–133 tok/s on four H100s), so merge only
calls that the device tool ran on the same warm machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LEVERS = Path(__file__).with_name("decode_levers.py")
PEER = "hf-static"
METRICS = ("tok_s", "first_ms", "decode_tok_s")


def command(model: str, contender: str, out: Path, repeats: int, budget_s: float) -> list[str]:
    """One process's ``decode_levers.py`` command: the peer alone, or one variant alone."""
    cmd = [sys.executable, str(LEVERS), "--model", model, "--repeats", str(repeats)]
    cmd += ["--budget-s", str(int(budget_s)), "--out", str(out)]
    if contender == PEER:
        return [*cmd, "--variants", "", "--peer"]
    return [*cmd, "--variants", contender]


def row_of(record: dict[str, Any], contender: str) -> dict[str, Any]:
    """The contender's row in one process's ``decode_levers`` record (or why it is missing)."""
    if contender == PEER:
        row = record.get("hf_static")
    else:
        row = record.get("variants", {}).get(contender)
    return dict(row) if isinstance(row, dict) else {"error": "no row in the record"}


def summarise(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each contender's medians over its processes, and each variant's ratio to the peer:
    the ratio of the medians (``x_hf``), the per-round ratios (round i's variant over
    round i's peer) that show its spread, and the variant's median over the peer's fastest
    process (``x_hf_best``, session 34: the peer's speed moves between and within machines,
    Serifu's does not, so this is the ratio no slow peer process can raise). Where the
    processes recorded their replies' digests (``tokens_sha``): whether each variant's are one
    and the same, and equal to the first variant's."""
    out: dict[str, Any] = {}
    for name, runs in rows.items():
        good = [r for r in runs if "tok_s" in r]
        med = {m: round(statistics.median(r[m] for r in good), 2) for m in METRICS} if good else {}
        out[name] = {"processes": len(good), "failed": len(runs) - len(good), **med}
    # the replies' tokens (session 37): one digest a variant, equal to the first variant's
    digests = {n: {r["tokens_sha"] for r in runs if "tokens_sha" in r} for n, runs in rows.items()}
    first = next((d for n, d in digests.items() if n != PEER and d), None)
    for name, found in digests.items():
        if name != PEER and found and first is not None:
            out[name]["tokens_same_every_process"] = len(found) == 1
            out[name]["tokens_equal_first"] = found == first
    peer = rows.get(PEER, [])
    if not out.get(PEER, {}).get("tok_s"):
        return out
    for name, runs in rows.items():
        if name == PEER or not out[name].get("tok_s"):
            continue
        out[name]["x_hf"] = round(out[name]["tok_s"] / out[PEER]["tok_s"], 3)
        pairs = [
            (r["tok_s"], p["tok_s"])
            for r, p in zip(runs, peer, strict=False)
            if "tok_s" in r and "tok_s" in p
        ]
        out[name]["x_hf_per_round"] = [round(a / b, 3) for a, b in pairs]
        best = max(r["tok_s"] for r in peer if "tok_s" in r)
        out[name]["x_hf_best"] = round(out[name]["tok_s"] / best, 3)
    return out


def merge(records: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One record from several runs' (``names``: where each came from): every contender's
    processes in run order, rounds numbered on, and the summary over all of them. Raises
    ``ValueError`` for runs of different models or GPUs."""
    models = {r.get("model") for r in records}
    if len(models) != 1:
        raise ValueError(f"records of different models: {sorted(map(str, models))}")
    gpus = {
        row["gpu"]
        for r in records
        for runs in r.get("processes", {}).values()
        for row in runs
        if row.get("gpu")
    }
    if len(gpus) > 1:
        raise ValueError(f"records from different GPUs: {sorted(gpus)}")
    rows: dict[str, list[dict[str, Any]]] = {}
    offset = 0
    for r in records:
        for name, runs in r.get("processes", {}).items():
            rows.setdefault(name, []).extend(
                row | {"round": row.get("round", 0) + offset} for row in runs
            )
        offset += int(r.get("rounds", 0))
    return {
        "model": models.pop(),
        "how": records[0].get("how", "") + f"; merged from {len(records)} runs on one machine",
        "rounds": offset,
        "merged_from": names,
        "processes": rows,
        "summary": summarise(rows),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="stablelm-beta-7b")
    ap.add_argument("--variants", default="default")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="timed replies within a process")
    # (session 35: a 7B decoder with its prompt pass compiled takes ~2.5 min to build)
    ap.add_argument("--process-s", type=float, default=270.0, help="one process's time limit")
    ap.add_argument("--budget-s", type=float, default=540.0, help="no process starts after it")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--merge", type=Path, nargs="+", help="join these records into --out instead")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(f.read_text(encoding="utf-8")) for f in args.merge]
        try:
            joined = merge(parts, [f.name for f in args.merge])
        except ValueError as exc:
            raise SystemExit(
                f"fresh_processes: cannot merge {' '.join(map(str, args.merge))}: {exc}"
            ) from None
        args.out.write_text(json.dumps(joined, ensure_ascii=False, indent=1), encoding="utf-8")
        print("summary", json.dumps(joined["summary"]), flush=True)
        return
    contenders = [PEER, *[v for v in args.variants.split(",") if v]]
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    record: dict[str, Any] = {
        "model": args.model,
        "how": "each contender alone in a fresh decode_levers.py process, round-robin: "
        + ", ".join(contenders),
        "rounds": args.rounds,
        "repeats_per_process": args.repeats,
    }
    t0 = time.perf_counter()
    scratch = args.out.with_suffix(".process.json")
    for rnd in range(args.rounds):
        for c in contenders:
            left = args.budget_s - (time.perf_counter() - t0)
            if left < 30:
                rows[c].append({"error": "time budget", "round": rnd})
                continue
            limit = min(args.process_s, left)
            scratch.unlink(missing_ok=True)
            cmd = command(args.model, c, scratch, args.repeats, limit - 20)
            try:
                done = subprocess.run(cmd, timeout=limit, capture_output=True, text=True)
                if scratch.exists():
                    one = json.loads(scratch.read_text(encoding="utf-8"))
                    row = row_of(one, c) | {
                        "bandwidth_gb_s": one.get("bandwidth_gb_s"),
                        "gpu": one.get("versions", {}).get("gpu"),
                    }
                else:
                    row = {"error": f"exit {done.returncode}: {done.stderr[-300:]}"}
            except subprocess.TimeoutExpired:
                row = {"error": f"over {limit:.0f} s"}
            row["round"] = rnd
            rows[c].append(row)
            brief = {k: row.get(k) for k in ("tok_s", "first_ms", "error")}
            print(c, rnd, json.dumps(brief), flush=True)
            record["processes"] = rows
            record["summary"] = summarise(rows)
            args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    scratch.unlink(missing_ok=True)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    print("summary", json.dumps(record["summary"]), flush=True)


if __name__ == "__main__":
    main()
