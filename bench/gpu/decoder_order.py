"""Why a process's later reply decoders run slower than its first (session 31: ~6 % on an
H200, the kernels' device time unchanged).

In one process, on one model with random weights: decoder A (the product's batch-1 decoder,
its step compiled) built and timed; decoder B, the same, built and timed while A lives; A
timed again with B alive; B deleted (collected, the allocator's cache emptied) and A timed
once more. Each timing is ``decode_levers``'s (whole reply, first token, steps; medians of
``--repeats``; the host's collections and allocator calls) with one profiled reply: the
kernels' device time per token and the device's idle time binned by gap length.

Reading it: if B is slow but A stays fast, a decoder built later is slower by itself (its
graphs, or its memory); if A slows down too once B exists, it is the process's state (graphs
or memory alive); if A recovers when B is deleted, what B holds is the cause.

    python3 bench/gpu/decoder_order.py --model line-3.6b --out $OUT/order.json
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import random_model, versions
from bench.gpu.decode_levers import VARIANTS, _decoder, _timing, profile_reply
from bench.gpu.generate_speed import NEW, PROMPT, _greedy, _how


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="line-3.6b")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = random_model(args.model, quantize=False).eval()
    g = torch.Generator().manual_seed(1)
    dev = next(model.parameters()).device
    ids = torch.randint(3, model.config.vocab_size, (1, PROMPT), generator=g).to(dev)
    mask = torch.ones_like(ids)
    record: dict[str, Any] = {"model": args.model, "versions": versions(), "rows": []}

    def build() -> Any:
        t1 = time.perf_counter()
        dec = _decoder(model, VARIANTS["default"])
        _greedy(dec, ids, mask, NEW)  # compiles and captures
        dec._built_s = round(time.perf_counter() - t1, 1)
        return dec

    def timed(label: str, dec: Any) -> None:
        row = {"label": label} | _timing(functools.partial(_greedy, dec, ids, mask), args.repeats)
        if torch.cuda.is_available():  # the kernels' profile (a CPU smoke run has none)
            prof = profile_reply(lambda: _greedy(dec, ids, mask, NEW))
            row["device_us_per_token"] = prof["device_us_per_token"]
            row["idle"] = prof["idle"]
        row["built_s"] = dec._built_s
        row["how"] = _how(dec)
        record["rows"].append(row)
        print(label, json.dumps({k: v for k, v in row.items() if k != "how"}), flush=True)
        args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")

    a = build()
    timed("A, first decoder", a)
    b = build()
    timed("B, built second (A alive)", b)
    timed("A again (B alive)", a)
    del b
    gc.collect()
    torch.cuda.empty_cache()
    timed("A again (B deleted)", a)
    c = build()
    timed("C, built third (B deleted, A alive)", c)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
