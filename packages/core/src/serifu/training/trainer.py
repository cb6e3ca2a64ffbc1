"""Serifu's QLoRA trainer: a compact loop over padded or packed (padding-free) batches.

The base is loaded in NF4 4-bit and a PEFT LoRA adapter is trained with AdamW. On a GPU
the rest of the base stays bf16 and packed rows run variable-length flash attention
(:mod:`serifu.accel.varlen`); the loss head runs only at labelled positions
(:mod:`serifu.accel.loss`). Checkpoints (every ``save_steps`` and on Ctrl-C) hold
the LoRA weights, optimizer, scheduler, RNG states and progress, and the data order is
a pure function of (seed, epoch), so ``resume=True`` continues exactly. The result is
written to a temporary folder and renamed to ``out`` only when complete.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serifu.config.train import TrainConfig
from serifu.fsutil import atomic_output_dir
from serifu.training.batches import pack_batch, pad_batch, plan_epoch
from serifu.training.checkpoint import Progress, load_checkpoint, save_checkpoint, work_dir
from serifu.training.distributed import Dist, all_sum, sum_gradients
from serifu.training.examples import Example, encode_rows
from serifu.training.loss import loss_sum

StepCallback = Callable[[int, float], None]


@dataclass
class TrainResult:
    out: Path
    steps: int
    loss_first: float
    loss_last: float
    tokens_per_s: float
    eval_loss: float | None
    info: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """What ``serifu train --json`` prints."""
        return {
            "out": str(self.out),
            "steps": self.steps,
            "loss_first": self.loss_first,
            "loss_last": self.loss_last,
            "tokens_per_s": self.tokens_per_s,
        }


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_plan(lengths: Sequence[int], config: TrainConfig) -> tuple[list[list[int]], int]:
    """Example indices of every step, and the steps of one epoch."""

    def epoch(e: int) -> list[list[int]]:
        return plan_epoch(
            lengths,
            batch_size=config.batch_size,
            max_tokens=config.max_tokens,
            seed=config.seed,
            epoch=e,
        )

    per_epoch = len(epoch(0))
    total = config.max_steps or max(1, math.ceil(config.epochs * per_epoch))
    steps = list(
        itertools.islice(itertools.chain.from_iterable(epoch(e) for e in itertools.count()), total)
    )
    return steps, per_epoch


def collate(
    examples: Sequence[Example],
    *,
    packing: bool,
    pad_id: int,
    device: str,
    row_tokens: int | None = None,
) -> dict[str, Any]:
    batch = pack_batch(examples, row_tokens) if packing else pad_batch(examples, pad_id)
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def prepare_base(model: Any, config: TrainConfig, quantized: bool) -> Any:
    """Freeze the base and turn on gradient checkpointing. ``upcast_fp32`` (the report's
    recipe) goes through PEFT's ``prepare_model_for_kbit_training``, which also casts
    every weight that is not 4-bit to float32; otherwise dtypes stay as loaded."""
    if quantized and config.upcast_fp32:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    for p in model.parameters():
        p.requires_grad_(False)
    set_checkpointing(model, config.gradient_checkpointing, config.checkpoint_every)
    return model


def set_checkpointing(model: Any, on: bool, every: int = 1) -> None:
    """Turn (non-reentrant) gradient checkpointing of every ``every``-th layer on, or off."""
    new = hasattr(model, "activation_checkpointing_enable")  # its newer name (transformers 5.x)
    if on and new:
        model.activation_checkpointing_enable({"use_reentrant": False}, every_n_layers=every)
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif new and model.is_activation_checkpointing:
        model.activation_checkpointing_disable()
    elif not new and getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()


def use_fast_attention(model: Any, config: TrainConfig, device: str) -> bool:
    """Switch packed training to variable-length attention where ``config.attention``
    asks for it ('auto': on a GPU). Returns whether the model now uses it."""
    if not config.packing or config.attention == "sdpa":
        return False
    if config.attention == "auto" and not device.startswith("cuda"):
        return False
    from serifu.accel.varlen import use_varlen_attention

    return use_varlen_attention(model)


def row_tokens(model: Any, config: TrainConfig) -> int | None:
    """Longest packed row: unbounded under variable-length attention (rows cost nothing
    there), else ``config.pack_row_tokens``."""
    from serifu.accel.varlen import NAME
    from serifu.training.loss import causal_lm

    if getattr(causal_lm(model).config, "_attn_implementation", None) == NAME:
        return None
    return config.pack_row_tokens


def add_lora(model: Any, config: TrainConfig, targets: Sequence[str], quantized: bool) -> Any:
    from peft import LoraConfig, get_peft_model

    model = prepare_base(model, config, quantized)
    target = list(config.lora.targets or targets)
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=target[0] if target == ["all-linear"] else target,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def peak_gib(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return float(torch.cuda.max_memory_allocated()) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def evaluate(
    model: Any, examples: Sequence[Example], config: TrainConfig, pad_id: int, device: str
) -> float | None:
    """Mean token NLL on ``examples`` (None when there are none)."""
    import torch

    if not examples:
        return None
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), config.batch_size):
            batch = collate(
                examples[start : start + config.batch_size],
                packing=config.packing,
                pad_id=pad_id,
                device=device,
            )
            s, n = loss_sum(model, batch)
            total, count = total + float(s), count + n
    model.train()
    return total / max(count, 1)


def fingerprint(model: str, build_sha: str, config: TrainConfig) -> str:
    keep = config.model_dump(mode="json", exclude={"save_steps", "eval"})
    raw = json.dumps({"model": model, "data": build_sha, "config": keep}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def make_optimizer(model: Any, config: TrainConfig, total_steps: int) -> tuple[Any, Any, list[Any]]:
    """AdamW over the trainable (LoRA) parameters and the configured schedule."""
    import torch
    from transformers import get_scheduler

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=total_steps,
    )
    return optimizer, scheduler, trainable


def train_step(
    model: Any,
    examples: Sequence[Example],
    *,
    config: TrainConfig,
    optimizer: Any,
    scheduler: Any,
    trainable: Sequence[Any],
    pad_id: int,
    device: str,
    dist: Dist | None = None,
) -> tuple[float, int]:
    """One optimizer step on this rank's ``examples``; returns (mean loss over all ranks, tokens)."""
    import torch

    if examples:
        batch = collate(
            examples,
            packing=config.packing,
            pad_id=pad_id,
            device=device,
            row_tokens=row_tokens(model, config),
        )
        local_labels = int((batch["labels"][:, 1:] != -100).sum())
    else:  # a short last step can leave a rank without examples: it still joins the sums
        local_labels = 0
    (global_labels,) = all_sum([local_labels], device, dist)
    if examples:
        total, _ = loss_sum(model, batch)
        (total / max(global_labels, 1.0)).backward()
    else:
        total = torch.zeros(())
    sum_gradients(trainable, dist)
    if config.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    tokens = sum(len(ex) for ex in examples)
    loss_all, tokens_all = all_sum([float(total.detach()), tokens], device, dist)
    return loss_all / max(global_labels, 1.0), int(tokens_all)


def train(
    model: str,
    data: Path,
    out: Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train a LoRA adapter for ``model`` on the dataset folder ``data``; write it to ``out``."""
    import torch
    from tqdm.auto import tqdm

    from serifu import plugins
    from serifu.modeling import default_device, load_model, load_tokenizer, resolve_base
    from serifu.training.data import load_dataset_folder
    from serifu.training.distributed import barrier, init_distributed, shard, shutdown
    from serifu.training.interrupt import deferred_interrupt

    started = time.perf_counter()
    config = config or TrainConfig()
    out = Path(out)
    dist = init_distributed()
    device = (
        dist.device
        if dist is not None and torch.cuda.is_available()
        else (device or default_device())
    )
    progress = progress and (dist is None or dist.main)
    base = resolve_base(model)
    folder = load_dataset_folder(Path(data))
    template = plugins.get_prompt_template(base.template)
    system = (
        folder.system_prompt() if (config.system_prompt and folder.format == "dialogue") else None
    )
    tokenizer = load_tokenizer(base)

    def encode(split: str) -> list[Example]:
        if split not in folder.splits:
            return []
        return encode_rows(
            folder.splits[split],
            fmt=folder.format,
            tokenizer=tokenizer,
            template=template,
            system=system,
            add_special_tokens=base.add_special_tokens,
            max_length=config.max_length,
        )

    train_ex, val_ex = encode("train"), encode("validation") if config.eval else []
    seed_everything(config.seed)
    lm = load_model(base, quantize=config.quantize_4bit, device=device)
    load_s = time.perf_counter() - started
    peft_model = add_lora(lm, config, base.lora_targets, config.quantize_4bit)
    use_fast_attention(peft_model, config, device)
    peft_model.train()
    steps, per_epoch = step_plan([len(ex) for ex in train_ex], config)
    optimizer, scheduler, trainable = make_optimizer(peft_model, config, len(steps))
    fp = fingerprint(base.id, folder.build_sha256, config)
    if resume:
        state = load_checkpoint(out, peft_model, optimizer, scheduler, fp)
    else:
        shutil.rmtree(work_dir(out), ignore_errors=True)
        state = Progress(fingerprint=fp)
    pad_id = int(tokenizer.pad_token_id)
    bar = tqdm(
        total=len(steps), initial=state.step, desc="train", unit="step", disable=not progress
    )
    with deferred_interrupt() as stop:
        try:
            for indices in steps[state.step :]:
                t0 = time.perf_counter()
                loss_value, tokens = train_step(
                    peft_model,
                    [train_ex[i] for i in shard(indices, dist)],
                    config=config,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    trainable=trainable,
                    pad_id=pad_id,
                    device=device,
                    dist=dist,
                )
                state.step += 1
                state.tokens += tokens
                state.train_seconds += time.perf_counter() - t0
                state.losses.append(loss_value)
                bar.update()
                bar.set_postfix(
                    loss=f"{state.losses[-1]:.3f}",
                    tok_s=f"{state.tokens / state.train_seconds:.0f}",
                )
                if on_step is not None:
                    on_step(state.step, state.losses[-1])
                if (
                    config.save_steps
                    and state.step % config.save_steps == 0
                    and state.step < len(steps)
                    and (dist is None or dist.main)
                ):
                    save_checkpoint(out, peft_model, optimizer, scheduler, state)
                if stop.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            if dist is not None and not dist.main:
                raise
            where = save_checkpoint(out, peft_model, optimizer, scheduler, state)
            import sys

            print(
                f"Interrupted at step {state.step}: checkpoint saved in {where}; continue with --resume.",
                file=sys.stderr,
            )
            raise
    bar.close()
    eval_loss = evaluate(peft_model, val_ex, config, pad_id, device) if config.eval else None
    tokens_per_s = state.tokens / state.train_seconds if state.train_seconds else 0.0
    info = {
        "out": str(out),
        "base_model": base.id,
        "base_source": base.source(),
        "template": base.template,
        "lora_targets": list(config.lora.targets or base.lora_targets),
        "system_prompt": system is not None,
        "dataset": {
            "path": str(folder.path),
            "build_sha256": folder.build_sha256,
            "format": folder.format,
            "character": folder.build.get("character"),
            "character_id": folder.build.get("character_id"),
            "train_examples": len(train_ex),
            "validation_examples": len(val_ex),
        },
        "config": config.model_dump(mode="json"),
        "steps": state.step,
        "epochs": state.step / max(per_epoch, 1),
        "loss": state.losses,
        "loss_first": state.losses[0],
        "loss_last": state.losses[-1],
        "eval_loss": eval_loss,
        "tokens": state.tokens,
        "tokens_per_s": tokens_per_s,
        "steps_per_s": state.step / state.train_seconds if state.train_seconds else 0.0,
        "load_s": load_s,
        "wall_s": time.perf_counter() - started,
        "peak_gib": peak_gib(device),
        "device": device,
        "world_size": dist.world if dist is not None else 1,
        "versions": _versions(),
    }
    if dist is None or dist.main:
        with atomic_output_dir(out) as tmp:
            peft_model.save_pretrained(str(tmp))
            from serifu.training.outputs import write_run_files

            write_run_files(tmp, info)
        shutil.rmtree(work_dir(out), ignore_errors=True)
    barrier(dist)
    shutdown(dist)
    return TrainResult(
        out, state.step, state.losses[0], state.losses[-1], tokens_per_s, eval_loss, info
    )


def _versions() -> dict[str, str]:
    from serifu.training.outputs import versions

    return versions()
