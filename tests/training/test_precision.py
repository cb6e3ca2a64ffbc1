"""``train.autocast``: which dtype the forward autocasts to (the GPU measurement of what it
saves lives in docs/benchmarks.md, ``bench/gpu/train_speed.py --rows liger-autocast``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from serifu.config.train import TrainConfig
from serifu.training.precision import autocast_dtype, forward_precision


def _model(dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from serifu_models.tiny import TINY_MODELS

    spec = next(m for m in TINY_MODELS if m.id == "tiny-llama")
    return AutoModelForCausalLM.from_config(spec.build_config(), dtype=dtype)


def test_autocast_only_on_cuda_with_a_half_precision_base_and_asked_for() -> None:
    on, off = TrainConfig(), TrainConfig(autocast="off")
    bf16, fp32 = _model(torch.bfloat16), _model(torch.float32)
    assert autocast_dtype(bf16, on, "cuda:0") == torch.bfloat16
    assert autocast_dtype(_model(torch.float16), on, "cuda") == torch.float16
    assert autocast_dtype(bf16, off, "cuda") is None
    assert TrainConfig().autocast == "on"  # the default since the H100 comparison
    assert autocast_dtype(bf16, on, "cpu") is None
    assert autocast_dtype(fp32, on, "cuda") is None  # nothing to cast down to


def test_no_dtype_means_no_autocast() -> None:
    with forward_precision(None):
        assert not torch.is_autocast_enabled("cuda")


def _saved_bytes(model: torch.nn.Module, ids: torch.Tensor, dtype: torch.dtype | None) -> dict:
    """Bytes autograd keeps for backward during one forward, by dtype."""
    kept: dict[torch.dtype, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[t.dtype] = kept.get(t.dtype, 0) + t.numel() * t.element_size()
        return t

    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        forward_precision(dtype, "cpu"),
    ):
        model(input_ids=ids).logits.float().sum()
    return kept


def test_autocast_keeps_loras_inputs_in_half_precision() -> None:
    """What the GPU trace found (PEFT's LoRA casts its input to its float32 weights' dtype
    and backward keeps that copy) and what autocast changes, shown on the CPU: under bf16
    autocast the same forward keeps those tensors in bf16, half the bytes."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = _model(torch.bfloat16)
    for p in base.parameters():
        p.requires_grad_(False)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(base, lora)
    model.train()
    assert next(p for p in model.parameters() if p.requires_grad).dtype == torch.float32
    ids = torch.randint(3, 200, (1, 64))
    plain = _saved_bytes(model, ids, None)
    amp = _saved_bytes(model, ids, torch.bfloat16)
    moved = plain[torch.float32] - amp[torch.float32]
    # at least each LoRA layer's input (2 layers x q, v; 64 tokens x 64 dims) leaves float32 ...
    assert moved >= 4 * 64 * 64 * 4
    assert amp[torch.bfloat16] - plain[torch.bfloat16] == moved // 2  # ... and is kept in bf16


def test_the_decision_says_why() -> None:
    from serifu.training.precision import decide_autocast

    on, off = TrainConfig(), TrainConfig(autocast="off")
    bf16, fp32 = _model(torch.bfloat16), _model(torch.float32)
    used = decide_autocast(bf16, on, "cuda:0")
    assert (used.setting, used.dtype) == ("on", "bfloat16") and "bfloat16 autocast" in used.reason
    assert decide_autocast(bf16, off, "cuda").reason.startswith("off (set in the config)")
    assert "CUDA only" in decide_autocast(bf16, on, "cpu").reason
    assert "float32" in decide_autocast(fp32, on, "cuda").reason
    assert decide_autocast(fp32, on, "cuda").dtype is None


def test_a_run_records_its_autocast_decision(lines_dir: Path, tmp_path: Path) -> None:
    """Asked for on the CPU: the run trains as without it, and serifu.json says why."""
    from serifu.training import Trainer

    cfg = TrainConfig(max_steps=1, max_tokens=128, save_steps=0, eval=False, report_to="none")
    cfg.autocast = "on"
    Trainer("tiny-llama", lines_dir, tmp_path / "a", cfg, progress=False).fit()
    record = json.loads((tmp_path / "a" / "serifu.json").read_text(encoding="utf-8"))["autocast"]
    assert record["setting"] == "on" and record["dtype"] is None
    assert "CUDA only" in record["reason"] and "cpu" in record["reason"]
