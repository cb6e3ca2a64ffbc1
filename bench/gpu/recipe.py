"""The report's training recipe, as its notebook ran it: HF ``Trainer`` + PEFT on the NF4
base, ``DataCollatorForLanguageModeling(mlm=False)`` (padding; labels = input ids),
batch 8, gradient checkpointing, bf16. The baseline every speed-up is measured against."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class RecipeStats:
    steps: int
    real_tokens: int
    seconds: float
    step_times: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


class _PadTokenizer:
    """The collator only pads: a stand-in tokenizer with the model's pad id (random models
    have no real tokenizer; real runs pass the model's tokenizer instead)."""

    padding_side = "right"
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, pad_id: int):
        self.pad_token_id = pad_id
        self.pad_token = "<pad>"

    def pad(
        self, features: list[dict[str, Any]], return_tensors: str = "pt", **_: Any
    ) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask}


def run_recipe(
    model: Any,
    sequences: list[list[int]],
    *,
    targets: tuple[str, ...],
    max_steps: int,
    pad_id: int,
    tokenizer: Any = None,
    out_dir: Path = Path("/tmp/serifu-recipe"),
    seed: int = 0,
    learning_rate: float = 2e-4,
) -> RecipeStats:
    """Train LoRA on ``sequences`` the report's way for ``max_steps``; time every step."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    gpu = torch.cuda.is_available()
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(
        model,
        LoraConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=0.05,
            target_modules=list(targets),
            task_type="CAUSAL_LM",
        ),
    )
    tok = tokenizer or _PadTokenizer(pad_id)
    base_collator = DataCollatorForLanguageModeling(tokenizer=tok, mlm=False)
    stats = RecipeStats(0, 0, 0.0)
    pending: list[int] = []

    def collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = base_collator(features)
        pending.append(int(batch["attention_mask"].sum()))
        return batch

    class Timer(TrainerCallback):
        t0 = 0.0

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            if gpu:
                torch.cuda.synchronize()
            Timer.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if gpu:
                torch.cuda.synchronize()
            stats.step_times.append(time.perf_counter() - Timer.t0)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **k: Any) -> None:
            if logs and "loss" in logs:
                stats.losses.append(float(logs["loss"]))

    args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=8,
        gradient_checkpointing=True,
        bf16=gpu,
        use_cpu=not gpu,
        max_steps=max_steps,
        learning_rate=learning_rate,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    ds = Dataset.from_dict({"input_ids": sequences})
    trainer = Trainer(
        model=model, args=args, train_dataset=ds, data_collator=collator, callbacks=[Timer()]
    )
    t0 = time.perf_counter()
    trainer.train()
    stats.seconds = time.perf_counter() - t0
    stats.steps = len(stats.step_times)
    stats.step_tokens = pending[: stats.steps]
    stats.real_tokens = sum(stats.step_tokens)
    model.unload()  # take the LoRA layers out again: the same base serves the next run
    return stats
