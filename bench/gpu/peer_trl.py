"""TRL's ``SFTTrainer`` as a training peer: same model, same data, same token budget per step.

TRL's best settings (issue 15), stated so the comparison can be checked:
  * ``packing=True`` with ``packing_strategy="bfd"`` (best-fit decreasing, which also turns on
    ``padding_free``): examples are packed into bins of ``max_length`` tokens and a batch is
    flattened into one row with per-example position ids; no padding, no attention across
    examples (TRL's collator passes the boundaries as ``cu_seq_lens_q/k``);
  * ``max_length`` = Serifu's token budget per step (16,384 on the GPU) and
    ``per_device_train_batch_size=1``: one bin per step, so each step holds at most as many
    tokens as Serifu's (whose steps are filled up to the same budget). Bins are nearly full,
    so both sides train on about the same number of real tokens per step;
  * completion-only loss on ``dialogue`` (prompt + completion, ``completion_mask``); plain LM
    loss on ``lines``;
  * bf16, gradient checkpointing (non-reentrant), fused AdamW, ``use_liger_kernel=True`` on
    CUDA where Liger has kernels for the architecture (else off, and the reason is noted);
    TRL's own chunked LM head (``add_fused_lm_head``) computes the loss;
  * attention: TRL's padding-free mode expects a flash-attention implementation that reads
    ``cu_seq_lens``. The GPU image has no ``flash-attn`` package, so TRL gets
    ``flash_attention_2`` when it is importable, otherwise the same variable-length flash
    kernel Serifu uses (``serifu_varlen``: ``torch.nn.attention.varlen.varlen_attn`` over
    TRL's own ``cu_seq_lens``). On the CPU that falls back to a block-diagonal SDPA mask;
  * the same QLoRA model (NF4 base, bf16 non-4-bit weights), LoRA rank/alpha/dropout and
    target modules as Serifu's trainer in the harness.

Real tokens = tokens of the packed row (padding-free: no padding). Step time = between the
ends of consecutive optimizer steps (data loading, forward, backward, update, TRL's
per-step metrics), synchronised.

    python bench/gpu/peer_trl.py --tiny --models gemma-3-270m --steps 3
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import peak_gib, peak_gib_reset, reset_base, sync

BEST: dict[str, Any] = {  # TRL SFTConfig settings shared by every run (see the module docstring)
    "packing": True,
    "packing_strategy": "bfd",
    "padding_free": True,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "gradient_checkpointing": True,
    "gradient_checkpointing_kwargs": {"use_reentrant": False},
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "max_grad_norm": 1.0,
}


def pad_only_tokenizer() -> Any:
    """A three-token fast tokenizer (pad 0, eos 1, unk 2): models built from a config have
    none, and the data is already token ids; TRL only reads its pad token."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
    )


def dataset_rows(examples: list[Any]) -> list[dict[str, list[int]]]:
    """TRL's pre-tokenised format from Serifu's examples: ``input_ids`` (+ ``completion_mask``
    where only part of an example is labelled, i.e. ``dialogue``)."""
    rows = []
    for ex in examples:
        row = {"input_ids": list(ex.input_ids)}
        if any(label == -100 for label in ex.labels):
            row["completion_mask"] = [0 if label == -100 else 1 for label in ex.labels]
        rows.append(row)
    return rows


def versions() -> str:
    """The peer's library versions, for the record's notes."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("trl", "liger-kernel"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{name} {version(name)}")
    return ", ".join(found)


def liger_support(model: Any) -> tuple[bool, str]:
    """Whether Liger can patch ``model`` here, and why not."""
    if not torch.cuda.is_available():
        return False, "liger off: CPU run (Triton kernels need CUDA)"
    if importlib.util.find_spec("liger_kernel") is None:
        return False, "liger off: liger-kernel not installed"
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    kind = model.config.model_type
    if kind not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        return False, f"liger off: Liger has no kernels for model_type {kind!r}"
    return True, f"liger on ({kind})"


def attention_for_trl(model: Any) -> str:
    """The padding-free attention TRL gets (see the module docstring)."""
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        model.set_attn_implementation("flash_attention_2")
        return "flash_attention_2"
    from serifu.accel.varlen import NAME, use_varlen_attention

    use_varlen_attention(model)
    return NAME


@contextlib.contextmanager
def restored(model: Any) -> Iterator[None]:
    """Undo what TRL and Liger patch on a shared base: methods bound to module instances
    (TRL's fused-head ``forward``, Liger's norm/MLP forwards) and the globals of the
    model's modeling module (Liger's rotary function and layer classes); the library's
    :func:`serifu.training.kernels.restore_point`, which Serifu's trainer uses too."""
    from serifu.training.kernels import restore_point

    undo = restore_point(model)
    try:
        yield
    finally:
        undo()


def trl_run(
    model: Any,
    examples: list[Any],
    targets: tuple[str, ...],
    *,
    token_budget: int,
    steps: int,
    learning_rate: float = 2e-4,
    lora: Any = None,
    liger: bool | None = None,
) -> dict[str, Any]:
    """Train ``steps`` optimizer steps of TRL's SFTTrainer on ``examples`` (Serifu
    ``Example``s); returns per-step times and tokens, peak GiB and what was used.

    ``liger=None``: on where Liger supports the architecture. A Liger failure is caught
    and the run repeated without it (noted). The base is left as it was found (LoRA
    unloaded, TRL's and Liger's patches undone: :func:`restored`, checkpointing off)."""
    try:
        return _trl_run(model, examples, targets, token_budget, steps, learning_rate, lora, liger)
    except Exception as err:  # a Liger kernel that cannot run this model: TRL without it
        if liger is False or not liger_support(model)[0]:
            raise
        out = _trl_run(model, examples, targets, token_budget, steps, learning_rate, lora, False)
        out["notes"] = f"liger failed ({type(err).__name__}: {str(err)[:200]}); " + out["notes"]
        return out


def _trl_run(
    model: Any,
    examples: list[Any],
    targets: tuple[str, ...],
    token_budget: int,
    steps: int,
    learning_rate: float,
    lora: Any,
    liger: bool | None,
) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from serifu.config.train import LoraConfigModel

    lora = lora or LoraConfigModel()
    gpu = torch.cuda.is_available()
    supported, why = liger_support(model)
    use_liger = supported if liger is None else (liger and supported)
    if liger is False and supported:
        why = "liger off (asked)"
    reset_base(model)
    attention = attention_for_trl(model)
    completion_only = any(-100 in ex.labels for ex in examples)
    data = Dataset.from_list(dataset_rows(examples))
    step_ends: list[float] = []
    step_tokens: list[int] = []

    class Timer(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            sync()
            step_ends.append(time.perf_counter())

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            sync()
            step_ends.append(time.perf_counter())

    class CountingTrainer(SFTTrainer):
        def training_step(self, model: Any, inputs: dict[str, Any], *args: Any) -> Any:
            mask = inputs.get("attention_mask")
            ids = inputs["input_ids"]
            step_tokens.append(int(mask.sum()) if mask is not None else int(ids.numel()))
            return super().training_step(model, inputs, *args)

    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(targets),
        task_type="CAUSAL_LM",
    )
    with tempfile.TemporaryDirectory(prefix="serifu-trl-") as tmp, restored(model):
        args = SFTConfig(
            output_dir=tmp,
            max_steps=steps,
            max_length=token_budget,
            completion_only_loss=completion_only,
            learning_rate=learning_rate,
            bf16=gpu,
            use_cpu=not gpu,
            optim="adamw_torch_fused" if gpu else "adamw_torch",
            use_liger_kernel=use_liger,
            report_to="none",
            save_strategy="no",
            logging_steps=max(steps, 1),
            disable_tqdm=True,
            seed=0,
            **BEST,
        )
        peak_gib_reset()
        trainer = CountingTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=pad_only_tokenizer(),
            peft_config=peft_config,
            callbacks=[Timer()],
        )
        try:
            trainer.train()
            peak = peak_gib()
            bins = len(cast(Any, trainer.train_dataset))
        finally:  # take the LoRA layers out again, whatever happened
            peft_model: Any = trainer.model
            del trainer
            with contextlib.suppress(Exception):
                model.disable_input_require_grads()
            if hasattr(peft_model, "unload"):
                peft_model.unload()
            del peft_model
            gc.collect()
            if gpu:
                torch.cuda.empty_cache()
    reset_base(model)
    times = [b - a for a, b in zip(step_ends, step_ends[1:], strict=False)]
    return {
        "times": times,
        "tokens": step_tokens[: len(times)],
        "peak": peak,
        "liger": use_liger,
        "attention": attention,
        "notes": f"{versions()}; {why}; attention {attention}; {'bf16' if gpu else 'float32 (CPU)'};"
        f" {bins} packed bins of <= {token_budget} tokens"
        + ("; completion-only loss" if completion_only else ""),
    }


def steady(times: list[float], tokens: list[int], skip: int) -> tuple[float, int]:
    rates = [n / t for n, t in zip(tokens[skip:], times[skip:], strict=True)]
    return statistics.median(rates), len(rates)


def main() -> None:
    from bench.gpu.common import REPORT_MODELS, TINY, random_model
    from bench.gpu.train_speed import _examples
    from serifu import plugins

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default=",".join(REPORT_MODELS))
    ap.add_argument("--workloads", default="lines,dialogue")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    for model_id in args.models.split(","):
        real = TINY[model_id] if args.tiny else model_id
        model = random_model(real, quantize=True)
        targets = tuple(plugins.get_base_model(real).lora_targets)
        vocab = model.config.get_text_config().vocab_size
        for workload in args.workloads.split(","):
            examples, _ = _examples(workload, vocab, 64 if args.tiny else 2048)
            r = trl_run(
                model, examples, targets, token_budget=512 if args.tiny else 16384, steps=args.steps
            )
            rate, n = steady(r["times"], r["tokens"], skip=min(2, args.steps - 1))
            print(
                f"{model_id} {workload}: TRL {rate:.0f} tok/s over {n} steps, peak {r['peak']:.2f} GiB; {r['notes']}"
            )


if __name__ == "__main__":
    main()
