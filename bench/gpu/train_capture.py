#!/usr/bin/env python3
"""Whole-step CUDA-graph capture of a QLoRA training step (issue 15: gemma-3-270m's
launch-bound step, >= 2x its ``lines`` tokens/s), measured against the product's step.

The static step and its capture are the product's (``serifu.training.capture``,
``train.capture = "on"``; its docstring says how the step is made static). Rows, same model,
same data, same LoRA initialisation, one process:
  eager     the product's usual step (``serifu.training.step.train_step``), Liger where it runs
  static    the static step run eagerly (its numerics and the padding's cost)
  captured  the static step replayed as a CUDA graph
  fused, captured-fused   eager / captured with the loss's softmax and gradient compiled into
            one fused function (``serifu.accel.loss.SOFTMAX_KERNEL``): ~45 % of gemma's step
            is that loss's elementwise passes over 262k-wide float32 logits
  captured-fused-ahead    as captured-fused, the next step's batch built on the host while
            the graph runs (what ``train.capture = "on"`` does on a GPU)
  eager-amp, captured-fused-ahead-amp   with the forward under bf16 autocast
            (``train.autocast = "on"``: LoRA computes in bf16, not float32)
  eager-lean, captured-fused-ahead-lean, captured-fused-ahead-amp-lean   with Serifu's lean
            LoRA function (``train.lora_backward = "lean"``; does it capture, what it costs)
  eager-lean-ckpt, captured-fused-ahead-lean-ckpt, captured-fused-ahead-amp-lean-ckpt
            the same with every layer checkpointed, recomputing without RNG replay (the lean
            function's recompute takes the forward's masks): the captured step at about
            TRL's memory instead of without checkpointing
Checks: the static step's losses against the eager step's, step by step. ``--profile``
adds one profiled step per row: the device's busy time, kernel count and costliest kernels.

    python3 bench/gpu/train_capture.py [--model gemma-3-270m] [--steps 12] [--warmup 3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import serifu.accel.loss as head_loss
from serifu.accel.lora_train import use_hashed_masks, use_lean_lora
from serifu.training.capture import StaticStep, plan_shapes
from serifu.training.precision import autocast_dtype

USUAL_ROWS = ("eager", "fused", "eager-amp", "eager-lean", "eager-lean-ckpt")
"""Rows that run the product's usual step (the others run the static step)."""


def step_once(
    row: str,
    model: Any,
    examples: list[Any],
    *,
    config: Any,
    optimizer: Any,
    scheduler: Any,
    trainable: list[Any],
    static: StaticStep,
    device: str,
    then: list[Any] | None = None,
) -> float:
    """One optimizer step of ``row``: the product's step, or the static one (eager or
    replayed) and then the update; returns its loss. ``then``: the next step's examples
    (``-ahead`` rows build its batch while this step's graph runs, as the product does)."""
    from serifu.training.step import apply_update
    from serifu.training.trainer import train_step

    if row in USUAL_ROWS:
        loss, _ = train_step(
            model, examples, config=config, optimizer=optimizer, scheduler=scheduler,
            trainable=trainable, pad_id=0, device=device,
        )  # fmt: skip
        return float(loss)
    loss = static.run(examples, then if "-ahead" in row else None)
    apply_update(optimizer, scheduler, trainable, config, keep_grads=static.graph)
    return loss


def device_kernels(step: Any) -> dict[str, Any]:
    """Run ``step()`` under ``torch.profiler``: the device's busy time (the sum of its kernels'
    times), the kernel count and the ten costliest kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    kernels: dict[str, list[float]] = {}
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            kernels.setdefault(ev.name, []).append(float(ev.time_range.elapsed_us()))
    top = sorted(kernels.items(), key=lambda kv: -sum(kv[1]))[:10]
    return {
        "busy_ms": round(sum(map(sum, kernels.values())) / 1e3, 2),
        "kernels": sum(map(len, kernels.values())),
        "top": [{"kernel": n[:100], "ms": round(sum(t) / 1e3, 2), "calls": len(t)} for n, t in top],
    }


def run_rows(
    model_id: str,
    *,
    steps: int,
    warmup: int,
    rows: tuple[str, ...],
    tiny: bool = False,
    profile: bool = False,
) -> dict[str, Any]:
    """Train ``steps`` optimizer steps per row from the same LoRA initialisation; times,
    tokens/s (median after ``warmup``), peak memory and losses per row."""
    from bench.gpu.common import (
        TINY,
        count_params,
        peak_gib,
        peak_gib_reset,
        random_model,
        reset_base,
        sync,
    )
    from bench.gpu.train_speed import SERIFU, _examples
    from serifu import plugins
    from serifu.config.train import TrainConfig
    from serifu.training.kernels import restore_point
    from serifu.training.loss import loss_chunk_tokens
    from serifu.training.model_setup import seed_everything, set_checkpointing
    from serifu.training.step import step_plan
    from serifu.training.trainer import (
        add_lora,
        make_optimizer,
        use_fast_attention,
        use_kernels,
    )

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    real = TINY[model_id] if tiny else model_id
    targets = tuple(plugins.get_base_model(real).lora_targets)
    model = random_model(real, quantize=True)
    vocab = int(model.config.get_text_config().vocab_size)
    budget = 512 if tiny else SERIFU["lines"]["max_tokens"]
    settings = dict(SERIFU["lines"]) | {
        "max_tokens": budget,
        "gradient_checkpointing": False,
        "kernels": "auto",
        "compile": "off",
    }
    if tiny:
        settings |= {"lora": {"dropout": 0.0}}  # the CPU check compares steps exactly
    config = TrainConfig(epochs=1, max_steps=steps, save_steps=0, eval=False, **settings)
    examples = _examples("lines", vocab, 64 if tiny else 9716)[0]
    plan, _ = step_plan([len(e) for e in examples], config)
    step_examples = [[examples[i] for i in micro] for micro in plan]
    chunk = min(loss_chunk_tokens(vocab), budget)
    shapes = plan_shapes(step_examples, budget, chunk)
    out: dict[str, Any] = {
        "model": model_id,
        "params": count_params(model),
        "budget": budget,
        "shapes": shapes.__dict__,
        "rows": {},
    }
    for row in rows:
        reset_base(model)
        seed_everything(config.seed)
        peft_model = add_lora(model, config, targets, quantized=True)
        use_fast_attention(peft_model, config, dev)
        undo = restore_point(peft_model)
        if "-lean" in row:  # undone with Liger's patches
            use_lean_lora(peft_model)
        if row.endswith("-ckpt"):  # hashed lean masks make the RNG replay needless
            set_checkpointing(peft_model, True, replay_rng=False)
            use_hashed_masks(peft_model, compiled=dev == "cuda")
        peft_model.train()
        times: list[float] = []
        losses: list[float] = []
        tokens = [sum(len(e) for e in exs) for exs in step_examples]
        error, busy = None, None
        try:
            kernels = use_kernels(peft_model, config)
            optimizer, scheduler, trainable = make_optimizer(peft_model, config, len(plan))
            graph = row.startswith("captured") and dev == "cuda"  # no CUDA: run it eagerly
            row_config = config.model_copy(update={"autocast": "on" if "-amp" in row else "off"})
            amp = autocast_dtype(peft_model, row_config, dev)
            static = StaticStep(peft_model, shapes, dev, graph=graph, amp=amp)
            # "-fused" rows: the loss's softmax and gradient as one compiled function
            head_loss.SOFTMAX_KERNEL = "compiled" if "fused" in row else "eager"
            peak_gib_reset()

            parts = dict(
                config=row_config, optimizer=optimizer, scheduler=scheduler,
                trainable=trainable, static=static, device=dev,
            )  # fmt: skip
            for k, exs in enumerate(step_examples):
                sync()
                t0 = time.perf_counter()
                then = step_examples[k + 1] if k + 1 < len(step_examples) else None
                losses.append(step_once(row, peft_model, exs, then=then, **parts))
                sync()
                times.append(time.perf_counter() - t0)
            if profile:  # one more step, on the first step's examples, under the profiler
                busy = device_kernels(
                    partial(step_once, row, peft_model, step_examples[0], **parts)
                )
        except Exception as err:  # a capture that fails is a result: say why
            error = f"{type(err).__name__}: {str(err)[:400]}"
        finally:
            head_loss.SOFTMAX_KERNEL = "eager"
            set_checkpointing(peft_model, False)
            undo()
            peft_model.unload()
        rates = [n / t for n, t in zip(tokens[warmup:], times[warmup:], strict=False)]
        out["rows"][row] = {
            "tok_per_s": round(statistics.median(rates), 1) if rates else None,
            "peak_gib": round(peak_gib(), 2),
            "times": [round(t, 4) for t in times],
            "losses": [round(x, 5) for x in losses],
            "kernels": getattr(kernels, "kernels", None) if error is None else None,
            "error": error,
            "profile": busy,
        }
        print(row, json.dumps(out["rows"][row]), flush=True)
    base = out["rows"].get("eager", {})
    for name, r in out["rows"].items():
        if name != "eager" and r["tok_per_s"] and base.get("tok_per_s"):
            r["vs_eager"] = round(r["tok_per_s"] / base["tok_per_s"], 3)
            n = min(len(r["losses"]), len(base["losses"]))
            r["max_loss_rel_diff"] = max(
                (
                    abs(a - b) / max(abs(b), 1e-9)
                    for a, b in zip(r["losses"][:n], base["losses"][:n], strict=True)
                ),
                default=None,
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the median")
    ap.add_argument("--rows", default="eager,static,captured")
    ap.add_argument("--tiny", action="store_true", help="the model's tiny stand-in (CPU check)")
    ap.add_argument("--profile", action="store_true", help="one more step per row, profiled")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = run_rows(
        args.model, steps=args.steps, warmup=args.warmup, rows=tuple(args.rows.split(",")),
        tiny=args.tiny, profile=args.profile,
    )  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
