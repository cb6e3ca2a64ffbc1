"""Getting a loaded base ready to train: freezing, gradient checkpointing, LoRA, attention,
optimizer, and the run's fingerprint."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any

from serifu.config.train import TrainConfig
from serifu.errors import SerifuError


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_base(model: Any, config: TrainConfig, quantized: bool) -> Any:
    """Freeze the base and turn on gradient checkpointing (``"auto"``: decided here from
    free GPU memory, :mod:`serifu.training.memory_policy`). ``upcast_fp32`` (the report's
    recipe) goes through PEFT's ``prepare_model_for_kbit_training``, which also casts
    every weight that is not 4-bit to float32; otherwise dtypes stay as loaded."""
    from serifu.training.memory_policy import choose_checkpointing

    checkpointing = choose_checkpointing(model, config).on
    if quantized and config.upcast_fp32:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    for p in model.parameters():
        p.requires_grad_(False)
    set_checkpointing(model, checkpointing, config.checkpoint_every)
    return model


def set_checkpointing(model: Any, on: bool, every: int = 1, *, replay_rng: bool = True) -> None:
    """Turn (non-reentrant) gradient checkpointing of every ``every``-th layer on, or off.
    ``replay_rng=False``: the recompute does not restore the forward's RNG state (a CUDA
    graph cannot capture that); only right where the recompute draws no random numbers."""
    new = hasattr(model, "activation_checkpointing_enable")  # its newer name (transformers 5.x)
    kwargs = {"use_reentrant": False} | ({} if replay_rng else {"preserve_rng_state": False})
    if on and new:
        model.activation_checkpointing_enable(kwargs, every_n_layers=every)
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif new and model.is_activation_checkpointing:
        model.activation_checkpointing_disable()
    elif not new and getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()


def checkpointed_layers(model: Any) -> int:
    """How many decoder layers of ``model`` run checkpointed in training."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return sum(
        isinstance(m, GradientCheckpointingLayer) and bool(m.gradient_checkpointing)
        for m in model.modules()
    )


def use_fast_attention(model: Any, config: TrainConfig, device: str) -> bool:
    """Switch packed training to Serifu's attention (``config.attention`` 'varlen' or
    'auto'): the varlen kernel on a GPU, a mask from the examples' boundaries elsewhere, the
    only path where a shared prompt prefix runs once (on the CPU too: gemma-3-270m's dialogue
    steps 7.5x faster, session 32; not with compiled layers there). Returns whether the
    model now uses it."""
    if not config.packing or config.attention == "sdpa":
        return False
    if config.attention == "auto" and not device.startswith("cuda") and config.compile != "off":
        return False  # the CPU's mask path breaks compiled layers' graphs (no kernel there)
    from serifu.accel.varlen import use_varlen_attention

    return use_varlen_attention(model)


def use_kernels(model: Any, config: TrainConfig) -> Any:
    """Resolve ``config.kernels`` / ``config.loss_kernel`` for ``model`` (plain or
    PEFT-wrapped, on its device) and patch it; returns the
    :class:`~serifu.training.kernels.KernelDecision` with what was patched. Take a
    :func:`~serifu.training.kernels.restore_point` first to undo it."""
    from serifu.training.kernels import apply_kernels, choose_kernels

    return apply_kernels(model, choose_kernels(model, config.kernels, config.loss_kernel))


def use_compile(model: Any, config: TrainConfig, steps: int | None = None) -> Any:
    """Resolve ``config.compile`` for ``model`` (a run of ``steps`` micro-batches; None:
    unknown) and compile its decoder layers as decided; returns the
    :class:`~serifu.training.compile.CompileDecision`. Call it after :func:`use_kernels`
    (the layers then compile with the fused kernels inside)."""
    from serifu.training.compile import use_compile as compile_layers

    return compile_layers(model, config.compile, steps)


def row_tokens(model: Any, config: TrainConfig) -> int | None:
    """Longest packed row: unbounded under variable-length attention (rows cost nothing
    there), else ``config.pack_row_tokens``."""
    from serifu.accel.varlen import NAME
    from serifu.training.loss import causal_lm

    if getattr(causal_lm(model).config, "_attn_implementation", None) == NAME:
        return None
    return config.pack_row_tokens


def shares_prefix(model: Any, config: TrainConfig) -> bool:
    """Whether packed rows run their examples' common prompt prefix once
    (``train.shared_prefix``): it needs packing and Serifu's attention (its mask)."""
    from serifu.accel.varlen import NAME
    from serifu.training.loss import causal_lm
    from serifu.training.shared_prefix import wanted

    attention = getattr(causal_lm(model).config, "_attn_implementation", None)
    return wanted(config) and attention == NAME


def linear_module_names(model: Any) -> list[str]:
    """The last name part of every linear layer (what LoRA ``targets`` name)."""
    names = set()
    for name, module in model.named_modules():
        kind = type(module).__name__
        if name and ("Linear" in kind or kind == "Conv1D"):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def check_lora_targets(model: Any, targets: Sequence[str], model_id: str) -> None:
    """Each target must name a module of ``model`` (by its last name part or a dotted suffix)."""
    if list(targets) == ["all-linear"]:
        return
    names = [name for name, _ in model.named_modules() if name]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise SerifuError(
            f"unknown LoRA target {', '.join(repr(t) for t in missing)} for {model_id}: "
            f"its linear layers are {', '.join(linear_module_names(model))} "
            '(set train.lora.targets to some of these, or to ["all-linear"])'
        )


def add_lora(
    model: Any,
    config: TrainConfig,
    targets: Sequence[str],
    quantized: bool,
    *,
    model_id: str | None = None,
) -> Any:
    """Freeze ``model`` and wrap it in a PEFT LoRA (``config.lora``; default targets ``targets``)."""
    from peft import LoraConfig, get_peft_model

    target = list(config.lora.targets or targets)
    check_lora_targets(model, target, model_id or type(model).__name__)
    model = prepare_base(model, config, quantized)
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


RESULT_NEUTRAL = {
    "save_steps",
    "eval",
    "eval_steps",
    "report_to",
    "kernels",
    "loss_kernel",
    "compile",
    "capture",
    "checkpoint_offload",
    "shared_prefix",
}
"""Config keys that do not change the trained adapter beyond rounding (a resume may change
them; ``kernels="auto"`` and ``compile="auto"`` resolve differently on another machine)."""


def fingerprint(model: str, build_sha: str, config: TrainConfig) -> str:
    keep = config.model_dump(mode="json", exclude=RESULT_NEUTRAL)
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
