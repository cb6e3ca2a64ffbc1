"""The report's recipe, kept as the baseline of side-by-side benchmarks.

HF ``Trainer`` + PEFT QLoRA as the report's notebook ran it: the NF4 double-quant base
with ``prepare_model_for_kbit_training`` and gradient checkpointing, LoRA r=4, α=8,
dropout 0.05, ``DataCollatorForLanguageModeling(mlm=False)`` (each batch padded,
labels = input ids, padding masked), batch 8, bf16 on a GPU. Serifu's own loop
(:mod:`serifu.training.trainer`) is the one ``serifu train`` uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RecipeStats:
    """What one recipe run did, step by step (times synchronised with the GPU)."""

    steps: int = 0
    real_tokens: int = 0
    """Non-padding tokens of the steps that ran."""
    seconds: float = 0.0
    step_times: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    peak_gib: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "loss": self.losses,
            "wall_s": self.seconds,
            "tokens_per_s": self.real_tokens / self.seconds if self.seconds else 0.0,
            "peak_gib": self.peak_gib,
        }


class _PadOnly:
    """The collator only pads; models built from a config have no tokenizer, so this
    stands in with the model's pad id."""

    padding_side = "right"
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, pad_id: int):
        self.pad_token_id = pad_id
        self.pad_token = "<pad>"

    def pad(
        self, features: list[dict[str, Any]], return_tensors: str = "pt", **_: Any
    ) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask}


def recipe_on_sequences(
    model: Any,
    sequences: Sequence[Sequence[int]],
    out: Path,
    *,
    targets: Sequence[str],
    tokenizer: Any = None,
    pad_id: int = 0,
    epochs: float = 3.0,
    max_steps: int | None = None,
    batch_size: int = 8,
    learning_rate: float = 2e-4,
    lora_r: int = 4,
    lora_alpha: int = 8,
    lora_dropout: float = 0.05,
    seed: int = 0,
    unload: bool = False,
) -> RecipeStats:
    """Train LoRA on token ``sequences`` with the recipe; time every step.

    ``model`` is a loaded (4-bit) ``*ForCausalLM``. With ``unload`` the LoRA layers are
    taken out again afterwards, so the same base can serve another run.
    """
    import torch
    from datasets import Dataset
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from serifu.config.train import LoraConfigModel, TrainConfig
    from serifu.training.trainer import add_lora, peak_gib

    gpu = next(model.parameters()).device.type == "cuda"
    quantized = any(type(p).__name__ == "Params4bit" for p in model.parameters())
    cfg = TrainConfig(
        gradient_checkpointing=True,
        upcast_fp32=True,
        lora=LoraConfigModel(r=lora_r, alpha=lora_alpha, dropout=lora_dropout),
    )
    peft_model = add_lora(model, cfg, targets, quantized=quantized)
    pad_with: Any = tokenizer or _PadOnly(pad_id)
    if getattr(pad_with, "padding_side", "right") != "right":
        # Gemma's tokenizer pads on the left; the collator passes no position ids, so
        # left padding would shift every short row's positions. The report's models
        # padded on the right, so the recipe does too.
        pad_with.padding_side = "right"
    collate = DataCollatorForLanguageModeling(tokenizer=pad_with, mlm=False)
    stats = RecipeStats()
    batch_tokens: list[int] = []

    def collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(features)
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    def sync() -> None:
        if gpu:
            torch.cuda.synchronize()

    class StepTimer(TrainerCallback):
        started = 0.0

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            sync()
            StepTimer.started = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            sync()
            stats.step_times.append(time.perf_counter() - StepTimer.started)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if logs and "loss" in logs:
                stats.losses.append(float(logs["loss"]))

    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch_size,
        num_train_epochs=epochs,
        max_steps=max_steps or -1,
        learning_rate=learning_rate,
        gradient_checkpointing=True,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if args.n_gpu > 1:
        # With several GPUs visible, one Trainer process wraps the model in nn.DataParallel,
        # whose replicas of the 4-bit layers compute garbage (loss ~ ln(vocab)). The report
        # ran on one GPU: so does the recipe (multi-GPU training is Serifu's torchrun path).
        args._n_gpu = 1
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=Dataset.from_dict({"input_ids": [list(s) for s in sequences]}),
        data_collator=collator,
        callbacks=[StepTimer()],
    )
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    stats.seconds = time.perf_counter() - started
    stats.steps = len(stats.step_times)
    stats.step_tokens = batch_tokens[: stats.steps]
    stats.real_tokens = sum(stats.step_tokens)
    stats.peak_gib = peak_gib("cuda" if gpu else "cpu")
    if unload:
        peft_model.unload()
    return stats


def run_recipe(
    model: str,
    texts: Sequence[str],
    out: Path,
    *,
    epochs: float = 3.0,
    batch_size: int = 8,
    learning_rate: float = 2e-4,
    max_steps: int | None = None,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The recipe on ``texts`` for a model id; returns losses, real tokens/s, wall time, peak GiB."""
    from serifu.modeling import default_device, load_model, load_tokenizer, resolve_base
    from serifu.training.trainer import seed_everything

    device = device or default_device()
    base = resolve_base(model)
    tokenizer = load_tokenizer(base)
    seed_everything(seed)
    lm = load_model(base, quantize=True, device=device)
    encoded = [tokenizer(t, add_special_tokens=base.add_special_tokens)["input_ids"] for t in texts]
    stats = recipe_on_sequences(
        lm,
        encoded,
        out,
        targets=base.lora_targets,
        tokenizer=tokenizer,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
    )
    return stats.summary()
