#!/usr/bin/env python3
"""Peak memory and time of a LoRA training step: PEFT's LoRA layers against Serifu's lean
LoRA function (``train.lora_backward``), with and without autocast to bf16, and with the
checkpointed layers' inputs held on the host (``train.checkpoint_offload``).

A llama-architecture decoder built from its config (random weights; stablelm-beta-7b's
shape, scaled down by default), its base in bf16, LoRA r=8 / alpha 16 / dropout 0.05 on all
seven projections (the recipe's), gradient checkpointing on or off. One forward and
backward over one row of ``--tokens`` tokens. Rows:
  peft            PEFT's modules as Serifu trains by default (LoRA in float32: each LoRA
                  layer keeps a float32 dropped-out copy of its input)
  peft-autocast   the same under bf16 autocast (as TRL / HF Trainer run with bf16 = true)
  lean            serifu.accel.lora_train (the input kept once, a 1-bit dropout mask)
  lean-autocast   both
  *-offload       (with checkpointing on) each checkpointed layer's input in host memory,
                  serifu.training.offload (pinned and on a side stream on CUDA; on the
                  CPU the copies stay in the same memory, so only ``kept`` and ``moved`` say
                  anything there)
Each row runs in a fresh process. On the CPU the peak is the process's resident-set
high-water mark above its level before the step (it varies by ~±15 MiB between processes);
on CUDA ``max_memory_allocated`` above the allocated memory before. ``kept``: the bytes the
forward saves for backward, each storage once (exact; with checkpointing only the layers'
inputs). Time: median of the repeats after the first (on a CPU without bf16 matmul units
the bf16 step is slow and its time says little).

    python bench/lora_backward.py [--tokens 1024] [--checkpointing on,off] [--device cpu|cuda]
    python bench/lora_backward.py --device cuda --hidden 4096 --intermediate 11008 --tokens 16384
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peak_memory import begin, child_row, kept_for_backward, peak_above, write_record

ROWS = ("peft", "peft-autocast", "lean", "lean-autocast")
OFFLOAD_ROWS = ("peft-offload", "lean-autocast-offload")
"""Rows chosen with ``--rows`` (with checkpointing on only)."""
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _model(args: argparse.Namespace) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 128,
        num_key_value_heads=args.hidden // 128,
        max_position_embeddings=max(4096, args.tokens),
    )
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).to(args.device)
    for p in base.parameters():
        p.requires_grad_(False)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=TARGETS)
    model = get_peft_model(base, lora)
    if args.one_checkpointing == "on":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def one_row(row: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from serifu.accel.lora_train import use_lean_lora
    from serifu.training.offload import HostOffload, offload_checkpoints

    torch.set_num_threads(args.threads)
    model = _model(args)
    layers = use_lean_lora(model) if row.startswith("lean") else 0
    # every tensor saved at a layer's boundary goes to the host: "kept" is then what stays
    offload = HostOffload(next(model.parameters()).device, min_bytes=0)
    if row.endswith("-offload"):
        offload_checkpoints(model, offload.hooks)
        row_kind = row.removesuffix("-offload")
    else:
        row_kind = row
    ids = torch.randint(3, args.vocab, (1, args.tokens), device=args.device)
    cuda = args.device.startswith("cuda")
    amp = (
        torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16)
        if row_kind.endswith("autocast")
        else contextlib.nullcontext()
    )
    kept: dict[int, int] = {}  # what the first forward keeps for backward
    peaks, seconds, losses = [], [], []
    for i in range(args.repeats):
        counting = kept_for_backward(model, kept) if i == 0 else contextlib.nullcontext()
        model.zero_grad(set_to_none=True)
        before = begin(args.device)
        start = time.perf_counter()
        with amp, counting:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        peaks.append(peak_above(args.device, before))
        if i == 0:  # equal bit for bit between a row and its -offload row (same masks)
            grads = [
                p.grad.double().square().sum() for p in model.parameters() if p.grad is not None
            ]
            grad_norm = float(torch.stack(grads).sum().sqrt())
        seconds.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
        del loss
    return {
        "row": row,
        "checkpointing": args.one_checkpointing,
        "lean_layers": layers,
        # the CPU's high-water mark only rises: the first step's is the one that measures
        "peak_mib": round((peaks[0] if not cuda else statistics.median(peaks)) / 2**20, 1),
        "kept_mib": round(sum(kept.values()) / 2**20, 1),
        "moved_mib": round(offload.moved_bytes / args.repeats / 2**20, 1),  # per step
        "seconds_median": round(statistics.median(seconds[1:] or seconds), 3),
        "seconds": [round(s, 3) for s in seconds],
        "first_loss": round(losses[0], 6),
        "first_grad_norm": grad_norm,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=2752)  # stablelm's 11008/4096 ratio
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--checkpointing", default="on,off")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: ROW:CHECKPOINTING here
    args = ap.parse_args()
    if args.one:
        row, args.one_checkpointing = args.one.split(":")
        print(json.dumps(one_row(row, args)))
        return 0
    shape = ["--tokens", args.tokens, "--hidden", args.hidden, "--intermediate", args.intermediate]
    shape += ["--layers", args.layers, "--vocab", args.vocab, "--repeats", args.repeats]
    shape += ["--threads", args.threads, "--device", args.device]
    rows = []
    for ckpt in args.checkpointing.split(","):
        for row in args.rows.split(","):
            if row.endswith("-offload") and ckpt != "on":
                continue  # nothing is checkpointed: nothing to offload
            cmd = [sys.executable, __file__, "--one", f"{row}:{ckpt}", *map(str, shape)]
            result = child_row(cmd)
            rows.append(result)
            print(
                f"checkpointing {ckpt:3} {row:14} peak {result['peak_mib']:8.1f} MiB  "
                f"kept {result['kept_mib']:7.1f} MiB  moved {result['moved_mib']:7.1f} MiB  "
                f"{result['seconds_median']:7.3f} s  first loss {result['first_loss']:.5f}  "
                f"grad norm {result['first_grad_norm']:.10g}",
                flush=True,
            )
    write_record(
        args.out, "lora_backward", args.device, rows,
        shape={k: getattr(args, k) for k in ("tokens", "hidden", "intermediate", "layers")},
        lora={"r": 8, "alpha": 16, "dropout": 0.05, "targets": TARGETS},
        repeats=args.repeats,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
