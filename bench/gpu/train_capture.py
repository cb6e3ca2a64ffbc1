#!/usr/bin/env python3
"""Whole-step CUDA-graph capture of a QLoRA training step (issue 15: gemma-3-270m's
launch-bound step, ≥ 2× its ``lines`` tokens/s).

A gemma-3-270m step over 16k tokens launches ~7,000 kernels, each paid for in Python (HF,
PEFT, bitsandbytes dispatch); the GPU waits. Capturing forward and backward once as a CUDA
graph and replaying it removes that host time. A graph needs fixed shapes and no host
synchronisation, so the step is made static here:
  - one packed row of exactly ``budget + sequences`` tokens (varlen attention: rows cost
    nothing); the unused end is split into label-less padding examples, so every step has
    the same number of examples (``cu_seq_lens`` of a fixed length) and none is empty;
  - ``max_length`` fixed at the run's longest example, and no padding example longer:
    flash attention launches ``max_length / 128`` blocks per example and head, so the
    row's width there (first GPU run, 2026-12-05) made the static step 1.8x slower;
  - the loss over a fixed number of gathered positions: the step's labelled positions,
    then weight-0 padding, through the frozen head's closed-form gradient
    (``serifu.accel.loss.linear_head_loss``) in fixed chunks — no ``nonzero``;
  - the label count enters as a device scalar (the gradient is the product's: the sum over
    labelled tokens divided by their number).
Clipping, AdamW and the scheduler run eagerly after each replay on the graph's gradients
(they are a few multi-tensor kernels). Gradient checkpointing must be off (gemma's step
fits; the product's "auto" turns it off there).

Rows, same model, same data, same LoRA initialisation, one process:
  eager     the product's step (``serifu.training.step.train_step``), Liger where it runs
  static    the static step run eagerly (its numerics and the padding's cost)
  captured  the static step replayed as a CUDA graph
Checks: the static step's losses against the eager step's, step by step.

    python3 bench/gpu/train_capture.py [--model gemma-3-270m] [--steps 12] [--warmup 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@dataclass(frozen=True)
class Shapes:
    """The fixed sizes every step of a run is padded to."""

    budget: int  # most tokens of real examples in a step
    sequences: int  # examples per step, padding ones included: cu_seq_lens has one more
    labels: int  # gathered positions for the loss (a multiple of chunk)
    chunk: int  # positions per loss chunk
    longest: int  # tokens in any one example, padding ones included (flash's max_length)

    @property
    def width(self) -> int:
        """Tokens in the row: the budget plus room for one token per padding example."""
        return self.budget + self.sequences


def plan_shapes(step_examples: list[list[Any]], budget: int, chunk: int) -> Shapes:
    """Fixed shapes that hold every step of the run: its most examples in a step, plus
    enough padding examples of at most ``longest`` tokens to fill any step's unused end."""
    from serifu.training.examples import IGNORE

    longest = max(2, max(len(ex) for exs in step_examples for ex in exs))
    real = max(len(exs) for exs in step_examples)
    # padding examples P >= pad hold up to P * longest >= budget + sequences - used tokens
    pad = -(-(budget + real) // (longest - 1)) + 1
    seqs = real + pad
    labelled = max(
        sum(label != IGNORE for ex in exs for label in ex.labels[1:]) for exs in step_examples
    )
    labels = max(chunk, -(-labelled // chunk) * chunk)
    fullest = max(sum(len(ex) for ex in exs) for exs in step_examples)
    if fullest > budget:
        raise ValueError(f"a step holds {fullest} tokens, more than the budget {budget}")
    return Shapes(budget, seqs, labels, chunk, longest)


def static_batch(examples: list[Any], shapes: Shapes) -> dict[str, torch.Tensor]:
    """One step's tensors at the fixed shapes (CPU), built with whole-row tensor operations
    (a per-token Python loop here took ~0.1 s a step on gemma's 16k tokens: host time that
    no graph removes)."""
    from serifu.training.examples import IGNORE

    used = sum(len(ex) for ex in examples)
    # the rest: padding examples without labels, the unused tokens shared evenly (none is
    # empty, none longer than ``longest``: flash attention's bound)
    slots, rest = shapes.sequences - len(examples), shapes.width - used
    if not slots <= rest <= slots * shapes.longest:
        raise ValueError(
            f"{rest} padding tokens do not fit {slots} examples of <= {shapes.longest}"
        )
    lengths = torch.tensor(
        [len(ex) for ex in examples] + [rest // slots + (k < rest % slots) for k in range(slots)]
    )
    cu = torch.zeros((shapes.sequences + 1,), dtype=torch.int32)
    cu[1:] = torch.cumsum(lengths, 0)
    starts = cu[:-1].long()
    positions = torch.arange(shapes.width) - torch.repeat_interleave(starts, lengths)
    ids = torch.zeros(shapes.width, dtype=torch.long)
    labels = torch.full((shapes.width,), IGNORE, dtype=torch.long)
    ids[:used] = torch.tensor([t for ex in examples for t in ex.input_ids])
    labels[:used] = torch.tensor([t for ex in examples for t in ex.labels])
    labels[starts] = IGNORE  # an example's first label is never used
    # the label of token t is predicted at t - 1
    where = (labels != IGNORE).nonzero().flatten()
    n = len(where)
    index = torch.zeros(shapes.labels, dtype=torch.long)
    targets = torch.zeros(shapes.labels, dtype=torch.long)
    weight = torch.zeros(shapes.labels, dtype=torch.float32)
    index[:n], targets[:n], weight[:n] = where - 1, labels[where], 1.0
    return {
        "input_ids": ids.view(1, -1),
        "position_ids": positions.view(1, -1),
        "cu": cu,
        "index": index,
        "targets": targets,
        "weight": weight,
        "inv_labels": torch.tensor(1.0 / max(n, 1), dtype=torch.float32),
    }


def forward_backward(model: Any, batch: dict[str, torch.Tensor], shapes: Shapes) -> torch.Tensor:
    """The static step's forward and backward (gradients land in ``.grad``); returns the
    summed loss as a device tensor (no host synchronisation anywhere)."""
    from serifu.accel.loss import decoder_and_head, frozen_linear_head, linear_head_loss
    from serifu.training.loss import causal_lm

    lm = causal_lm(model)
    decoder, _, _ = decoder_and_head(lm)
    head = frozen_linear_head(lm)
    if head is None:
        raise ValueError("the static step needs a frozen, plain linear output head")
    hidden = decoder(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        cu_seq_lens_q=batch["cu"],
        cu_seq_lens_k=batch["cu"],
        max_length_q=shapes.longest,
        max_length_k=shapes.longest,
        use_cache=False,
    ).last_hidden_state
    h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["index"])
    total = linear_head_loss(h, batch["targets"], head, shapes.chunk, batch["weight"])
    (total * batch["inv_labels"]).backward()
    return total.detach()


class StaticStep:
    """Runs :func:`forward_backward` on fixed device buffers, eagerly or as a CUDA graph."""

    def __init__(self, model: Any, shapes: Shapes, device: str, *, graph: bool) -> None:
        self.model, self.shapes, self.device, self.graph = model, shapes, device, graph
        self.buffers: dict[str, torch.Tensor] | None = None
        self.cuda_graph: Any = None
        self.loss: torch.Tensor | None = None

    def load(self, batch: dict[str, torch.Tensor]) -> None:
        if self.buffers is None:
            self.buffers = {k: v.to(self.device) for k, v in batch.items()}
        else:
            for k, v in batch.items():
                self.buffers[k].copy_(v, non_blocking=True)

    def capture(self, warmup: int = 3) -> None:
        """Warm up on a side stream (as torch's whole-network capture recipe asks), then
        record one forward and backward; gradients then live in the graph's pool."""
        assert self.buffers is not None
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                for p in trainable:
                    p.grad = None
                forward_backward(self.model, self.buffers, self.shapes)
        torch.cuda.current_stream().wait_stream(side)
        for p in trainable:
            p.grad = None
        self.cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.cuda_graph):
            self.loss = forward_backward(self.model, self.buffers, self.shapes)

    def run(self, batch: dict[str, torch.Tensor]) -> float:
        """One step's forward and backward on ``batch``; the summed loss / labels."""
        self.load(batch)
        assert self.buffers is not None
        if self.graph:
            if self.cuda_graph is None:
                self.capture()
            self.cuda_graph.replay()
            loss = self.loss
        else:
            for p in self.model.parameters():
                if p.requires_grad:
                    p.grad = None
            loss = forward_backward(self.model, self.buffers, self.shapes)
        assert loss is not None
        return float(loss) * float(batch["inv_labels"])


def update(
    optimizer: Any, scheduler: Any, trainable: list[Any], max_grad_norm: float | None
) -> None:
    """Clip, step, schedule — and keep the gradients' storage (a graph writes into it)."""
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    optimizer.step()
    scheduler.step()


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
    shapes: Shapes,
    device: str,
) -> float:
    """One optimizer step of ``row``: the product's step, or the static one (eager or
    replayed) and then the update; returns its loss."""
    from serifu.training.trainer import train_step

    if row == "eager":
        loss, _ = train_step(
            model, examples, config=config, optimizer=optimizer, scheduler=scheduler,
            trainable=trainable, pad_id=0, device=device,
        )  # fmt: skip
        return float(loss)
    loss = static.run(static_batch(examples, shapes))
    update(optimizer, scheduler, trainable, config.max_grad_norm)
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
    from serifu.training.loss import CHUNK_BYTES
    from serifu.training.model_setup import seed_everything
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
    chunk = min(max(256, CHUNK_BYTES // (4 * vocab)), budget)
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
        peft_model.train()
        times: list[float] = []
        losses: list[float] = []
        tokens = [sum(len(e) for e in exs) for exs in step_examples]
        error, busy = None, None
        try:
            kernels = use_kernels(peft_model, config)
            optimizer, scheduler, trainable = make_optimizer(peft_model, config, len(plan))
            static = StaticStep(peft_model, shapes, dev, graph=row == "captured")
            peak_gib_reset()

            parts = dict(
                config=config, optimizer=optimizer, scheduler=scheduler,
                trainable=trainable, static=static, shapes=shapes, device=dev,
            )  # fmt: skip
            for exs in step_examples:
                sync()
                t0 = time.perf_counter()
                losses.append(step_once(row, peft_model, exs, **parts))
                sync()
                times.append(time.perf_counter() - t0)
            if profile:  # one more step, on the first step's examples, under the profiler
                busy = device_kernels(
                    partial(step_once, row, peft_model, step_examples[0], **parts)
                )
        except Exception as err:  # a capture that fails is a result: say why
            error = f"{type(err).__name__}: {str(err)[:400]}"
        finally:
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
