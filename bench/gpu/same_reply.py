"""Whether fresh processes give the same greedy reply, with each GEMV shape's one configuration
(the product's since session 39) and with the autotuner timing them in each process
(``SERIFU_GEMV_TUNE=1``, the product before).

Each process (``--processes`` of each setting, in turn) builds the model (random weights,
seed 0) and the product's batch-1 decoder (``StaticDecoder``: CUDA graphs, Serifu's GEMV and
split-key attention; its step compiled only with ``--compile``; ``--weights uint4``: the 4-bit
reply weights on Serifu's uint4 GEMV), runs a greedy reply to a seeded ~360-token prompt, and
prints a digest of its tokens and its whole-reply tok/s (median of ``--repeats``). Random
weights make logits nearly flat, so a last-bit difference in a sum shows as a different
token.

    python3 bench/gpu/same_reply.py --model stablelm-beta-7b --processes 2 --out $OUT/same.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SETTINGS = {"pinned": {"SERIFU_GEMV_TUNE": "0"}, "tuned": {"SERIFU_GEMV_TUNE": "1"}}


def child(model_id: str, compile_step: bool, repeats: int, weights: str) -> dict[str, Any]:
    """One process's reply: digests and speed."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.gpu.common import random_model
    from bench.gpu.generate_speed import NEW, PROMPT
    from serifu.accel.decode import StaticDecoder

    model = random_model(model_id, quantize=False).eval()
    if weights == "uint4":  # the 4-bit reply weights on Serifu's uint4 GEMV
        from bench.gpu.generate_speed import _uint4

        model = _uint4(model, table="bf16", kernel="serifu")
    dec = StaticDecoder(model, max_len=PROMPT + NEW + 8, batch_size=1, compile=compile_step)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (1, PROMPT), generator=g).cuda()
    mask = torch.ones_like(ids)

    def reply() -> torch.Tensor:
        return torch.cat(list(dec.greedy(ids, mask, max_new_tokens=NEW)), 1)

    t0 = time.perf_counter()
    tokens = reply()  # warm-up: graphs (and the compile)
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        again = reply()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        assert torch.equal(again, tokens), "one process, two different replies"
    return {
        "tokens_sha": hashlib.sha256(tokens.cpu().numpy().tobytes()).hexdigest()[:16],
        "tok_s": round(NEW / statistics.median(times), 1),
        "warm_s": round(warm_s, 1),
        "gemv_layers": dec.gemv,
    }


def summarise(processes: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each setting's processes: whether all that finished gave one reply (two at least), their
    median tok/s, and how many finished."""
    summary = {}
    for name, rows in processes.items():
        ok = [r for r in rows if "tokens_sha" in r]
        summary[name] = {
            "tokens_same_every_process": len(ok) > 1 and len({r["tokens_sha"] for r in ok}) == 1,
            "tok_s_median": statistics.median(r["tok_s"] for r in ok) if ok else None,
            "processes": len(ok),
        }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="stablelm-beta-7b")
    ap.add_argument("--processes", type=int, default=2, help="of each setting")
    ap.add_argument("--settings", default="pinned,tuned")
    ap.add_argument("--compile", action="store_true", help="the step compiled (inductor)")
    ap.add_argument("--weights", choices=("bf16", "uint4"), default="bf16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.compile, args.repeats, args.weights)))
        return
    import torch

    record: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "model": args.model}
    record |= {"compiled": args.compile, "weights": args.weights, "processes": {}}
    names = args.settings.split(",")
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--weights", args.weights]
    cmd += ["--repeats", str(args.repeats)] + (["--compile"] if args.compile else [])
    for i in range(args.processes):
        for name in names:
            env = os.environ | SETTINGS[name]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            lines = done.stdout.strip().splitlines()
            try:
                row = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                row = {"error": (done.stderr or done.stdout)[-800:]}
            record["processes"].setdefault(name, []).append(row)
            print(name, i, row, flush=True)
            if args.out:
                args.out.write_text(json.dumps(record, indent=1))
    summary = record["summary"] = summarise(record["processes"])
    print(json.dumps(summary), flush=True)
    if args.out:
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
