"""The report's recipe, kept for side-by-side benchmarks: HF ``Trainer`` + PEFT QLoRA.

``DataCollatorForLanguageModeling(mlm=False)`` pads each batch and sets labels = input
ids (padding masked), batch 8, gradient checkpointing, NF4 double-quant base. Serifu's
own loop (:mod:`serifu.training.trainer`) is the one ``serifu train`` uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run_recipe(
    model: str,
    texts: Sequence[str],
    out: Path,
    *,
    epochs: float = 3.0,
    batch_size: int = 8,
    learning_rate: float = 2e-4,
    max_steps: int | None = None,
    lora_r: int = 4,
    lora_alpha: int = 8,
    lora_dropout: float = 0.05,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train on ``texts`` the report's way; returns losses, real tokens/s, wall time, peak GiB."""
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from serifu.config.train import LoraConfigModel, TrainConfig
    from serifu.modeling import default_device, load_model, load_tokenizer, resolve_base
    from serifu.training.trainer import add_lora, peak_gib, seed_everything

    device = device or default_device()
    base = resolve_base(model)
    tokenizer = load_tokenizer(base)
    seed_everything(seed)
    lm = load_model(base, quantize=True, device=device)
    cfg = TrainConfig(
        gradient_checkpointing=True,
        lora=LoraConfigModel(r=lora_r, alpha=lora_alpha, dropout=lora_dropout),
    )
    peft_model = add_lora(lm, cfg, base.lora_targets, quantized=True)
    encoded = [tokenizer(t, add_special_tokens=base.add_special_tokens)["input_ids"] for t in texts]
    dataset = Dataset.from_dict({"input_ids": encoded})
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
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
        use_cpu=not device.startswith("cuda"),
        bf16=bf16,
        seed=seed,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
    )
    started = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - started
    steps = int(result.global_step)
    seen = min(len(encoded), steps * batch_size) if max_steps else len(encoded)
    real_tokens = (
        sum(len(e) for e in encoded) * (steps * batch_size / max(seen, 1))
        if max_steps
        else sum(len(e) for e in encoded) * epochs
    )
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return {
        "steps": steps,
        "loss": losses,
        "wall_s": wall,
        "tokens_per_s": real_tokens / wall,
        "peak_gib": peak_gib(device),
    }
