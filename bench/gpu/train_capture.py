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
  - ``max_length`` fixed at the row's width (flash attention's upper bound);
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

    @property
    def width(self) -> int:
        """Tokens in the row: the budget plus room for one token per padding example."""
        return self.budget + self.sequences


def plan_shapes(step_examples: list[list[Any]], budget: int, chunk: int) -> Shapes:
    """The smallest fixed shapes that hold every step of the run (+1 sequence: the pad block)."""
    from serifu.training.examples import IGNORE

    seqs = max(len(exs) for exs in step_examples) + 1
    labelled = max(
        sum(label != IGNORE for ex in exs for label in ex.labels[1:]) for exs in step_examples
    )
    labels = max(chunk, -(-labelled // chunk) * chunk)
    longest = max(sum(len(ex) for ex in exs) for exs in step_examples)
    if longest > budget:
        raise ValueError(f"a step holds {longest} tokens, more than the budget {budget}")
    return Shapes(budget, seqs, labels, chunk)


def static_batch(examples: list[Any], shapes: Shapes) -> dict[str, torch.Tensor]:
    """One step's tensors at the fixed shapes (CPU)."""
    from serifu.training.examples import IGNORE

    ids = torch.zeros((1, shapes.width), dtype=torch.long)
    positions = torch.zeros((1, shapes.width), dtype=torch.long)
    cu = torch.zeros((shapes.sequences + 1,), dtype=torch.int32)
    index = torch.zeros(shapes.labels, dtype=torch.long)
    targets = torch.zeros(shapes.labels, dtype=torch.long)
    weight = torch.zeros(shapes.labels, dtype=torch.float32)
    col, n = 0, 0
    for s, ex in enumerate(examples):
        length = len(ex)
        ids[0, col : col + length] = torch.tensor(ex.input_ids)
        positions[0, col : col + length] = torch.arange(length)
        # the label of token t+1 is predicted at t; an example's first label is never used
        for t in range(1, length):
            if ex.labels[t] != IGNORE:
                index[n], targets[n], weight[n] = col + t - 1, ex.labels[t], 1.0
                n += 1
        col += length
        cu[s + 1] = col
    # the rest: padding examples without labels, one token each and the last one longer
    # (no example is empty: flash attention is not asked to handle zero-length ones)
    for s in range(len(examples) + 1, shapes.sequences + 1):
        end = col + 1 if s < shapes.sequences else shapes.width
        positions[0, col:end] = torch.arange(end - col)
        cu[s] = col = end
    return {
        "input_ids": ids,
        "position_ids": positions,
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
        max_length_q=shapes.width,
        max_length_k=shapes.width,
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


def run_rows(
    model_id: str, *, steps: int, warmup: int, rows: tuple[str, ...], tiny: bool = False
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
        train_step,
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
        error = None
        try:
            kernels = use_kernels(peft_model, config)
            optimizer, scheduler, trainable = make_optimizer(peft_model, config, len(plan))
            static = StaticStep(peft_model, shapes, dev, graph=row == "captured")
            peak_gib_reset()
            for exs in step_examples:
                sync()
                t0 = time.perf_counter()
                if row == "eager":
                    loss, _ = train_step(
                        peft_model, exs, config=config, optimizer=optimizer,
                        scheduler=scheduler, trainable=trainable, pad_id=0, device=dev,
                    )  # fmt: skip
                else:
                    loss = static.run(static_batch(exs, shapes))
                    update(optimizer, scheduler, trainable, config.max_grad_norm)
                sync()
                times.append(time.perf_counter() - t0)
                losses.append(float(loss))
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
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = run_rows(
        args.model, steps=args.steps, warmup=args.warmup, rows=tuple(args.rows.split(",")),
        tiny=args.tiny,
    )  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
