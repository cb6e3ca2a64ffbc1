"""``train.kernels`` / ``train.loss_kernel``: the setting in the config, the policy from
plain values, what a CPU run resolves and records, and (where liger-kernel imports) that
the patches land on the tiny llama and gemma3 models and are undone exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
import torch

from serifu.config import load_config
from serifu.config.train import TrainConfig
from serifu.errors import SerifuError
from serifu.training.kernels import choose_kernels, decide, restore_point


def test_config_takes_the_kernel_settings_and_names_a_bad_value(tmp_path: Path) -> None:
    assert TrainConfig().kernels == "auto" and TrainConfig().loss_kernel == "serifu"
    cfg = load_config(None, ['train.kernels="off"', 'train.loss_kernel="liger"'], search_cwd=False)
    assert cfg.train.kernels == "off" and cfg.train.loss_kernel == "liger"
    toml = tmp_path / "serifu.toml"
    toml.write_text('[train]\nkernels = "fast"\n', encoding="utf-8")
    with pytest.raises(SerifuError) as err:
        load_config(toml)
    message = str(err.value)
    assert str(toml) in message and "'train.kernels'" in message
    assert "'auto', 'liger' or 'off'" in message and "'fast'" in message
    with pytest.raises(SerifuError, match="train.loss_kernel"):
        load_config(None, ['train.loss_kernel="triton"'], search_cwd=False)


def test_policy_from_plain_values() -> None:
    gpu: dict[str, Any] = {"device": "cuda:0", "model_type": "llama", "unavailable": None}
    on = decide("auto", **gpu, supported=True)
    assert on.kernels == "liger" and on.loss == "serifu" and "'llama'" in on.reason
    assert decide("liger", **gpu, supported=True).kernels == "liger"
    assert decide("off", **gpu, supported=True).kernels == "off"
    neox = decide("auto", device="cuda:0", model_type="gpt_neox", unavailable=None, supported=False)
    assert neox.kernels == "off" and "no kernels for model type 'gpt_neox'" in neox.reason
    missing = "liger-kernel is not installed (pip install 'serifu[liger]')"
    absent = decide("auto", device="cuda", model_type="llama", unavailable=missing, supported=False)
    assert absent.kernels == "off" and "serifu[liger]" in absent.reason
    cpu = decide("auto", device="cpu", model_type="llama", unavailable=None, supported=False)
    assert cpu.kernels == "off" and cpu.reason.startswith("auto: ") and "CUDA" in cpu.reason
    with pytest.raises(SerifuError, match="'liger' cannot be used: the model is on cpu"):
        decide("liger", device="cpu", model_type="llama", unavailable=None, supported=False)
    with pytest.raises(SerifuError, match="no kernels for model type 'gptj'"):
        decide("liger", device="cuda", model_type="gptj", unavailable=None, supported=False)
    with pytest.raises(SerifuError, match="loss_kernel = 'liger' cannot be used"):
        decide("off", device="cpu", model_type="llama", unavailable=None, supported=False,
               loss_kernel="liger")  # fmt: skip
    with pytest.raises(SerifuError, match="train.kernels must be one of 'auto', 'liger', 'off'"):
        decide("fast", device="cuda", model_type="llama", unavailable=None, supported=True)
    fused = decide("auto", **gpu, supported=True, loss_kernel="liger")
    assert fused.loss == "liger" and fused.as_dict()["loss"] == "liger"


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-gemma"])
def test_auto_resolves_off_on_the_cpu_and_says_why(model_id: str) -> None:
    from serifu.modeling import load_model, resolve_base

    model = load_model(resolve_base(model_id), quantize=True, device="cpu")
    auto = choose_kernels(model, "auto")
    assert auto.kernels == "off" and "on cpu" in auto.reason and "CUDA GPU" in auto.reason
    assert auto.model_type == model.config.model_type
    with pytest.raises(SerifuError, match="train.kernels = 'liger' cannot be used"):
        choose_kernels(model, "liger")


def test_cpu_run_records_the_kernels_in_serifu_json(lines_dir: Path, tmp_path: Path) -> None:
    from serifu.training import train

    cfg = TrainConfig(max_steps=1, max_tokens=256, save_steps=0, eval=False, report_to="none")
    result = train("tiny-llama", lines_dir, tmp_path / "a", cfg, progress=False)
    info = json.loads((tmp_path / "a" / "serifu.json").read_text(encoding="utf-8"))
    assert info["config"]["kernels"] == "auto"
    assert info["kernels"]["kernels"] == "off" and info["kernels"]["patched"] == {}
    assert "Triton kernels need a CUDA GPU" in info["kernels"]["reason"]
    assert result.info["kernels"] == info["kernels"]


def test_liger_on_the_cpu_is_refused_before_training(lines_dir: Path, tmp_path: Path) -> None:
    from serifu.training import train

    cfg = TrainConfig(max_steps=1, kernels="liger", save_steps=0, eval=False, report_to="none")
    with pytest.raises(SerifuError, match="train.kernels = 'liger' cannot be used"):
        train("tiny-llama", lines_dir, tmp_path / "b", cfg, progress=False)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("tiny-llama", {"RMSNorm": 2 * 2 + 1, "SwiGLUMLP": 2, "rope": 1}),
        ("tiny-gemma", {"RMSNorm": 6 * 2 + 1, "GEGLUMLP": 2, "rope": 1}),
    ],
)
def test_liger_patches_land_and_are_undone_exactly(model_id: str, expected: dict[str, int]) -> None:
    """Liger's kernels need CUDA, so on the CPU only the patching is checked: the layers
    it names are replaced (through PEFT's LoRA wrapper), and the restore point gives back
    the stock model, whose loss is then bit for bit what it was."""
    pytest.importorskip("liger_kernel.transformers.monkey_patch", reason="liger-kernel absent")
    import sys

    from serifu.modeling import load_model, resolve_base
    from serifu.training.examples import Example
    from serifu.training.kernels import KernelDecision, apply_kernels
    from serifu.training.loss import loss_sum
    from serifu.training.trainer import add_lora, collate

    base = resolve_base(model_id)
    model = load_model(base, quantize=True, device="cpu")
    layers = model.config.num_hidden_layers
    assert layers == 2  # the expected counts above assume the tiny models' two layers
    peft_model = add_lora(model, TrainConfig(), base.lora_targets, quantized=True)
    ids = [3 + (7 * i) % 50 for i in range(24)]
    batch = collate([Example(ids[:10], ids[:10]), Example(ids[10:], ids[10:])], packing=True,
                    pad_id=0, device="cpu")  # fmt: skip
    with torch.no_grad():
        before = float(loss_sum(peft_model, batch)[0])
    modeling = sys.modules[type(model).__module__]
    rope = modeling.apply_rotary_pos_emb
    undo = restore_point(peft_model)
    decision = KernelDecision("liger", "test", "liger", model.config.model_type)
    done = apply_kernels(peft_model, decision)
    assert done.patched == expected
    assert modeling.apply_rotary_pos_emb is not rope
    assert type(model.model.layers[0].mlp.gate_proj).__name__ == "Linear4bit"  # LoRA kept
    undo()
    assert modeling.apply_rotary_pos_emb is rope
    assert not any(m._get_name().startswith("Liger") for m in peft_model.modules())
    with torch.no_grad():
        assert float(loss_sum(peft_model, batch)[0]) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="Liger's Triton kernels need CUDA")
@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-gemma"])
@pytest.mark.parametrize("loss_kernel", ["serifu", "liger"])
def test_liger_step_matches_the_stock_step_on_a_gpu(
    model_id: str, loss_kernel: Literal["serifu", "liger"]
) -> None:
    """Packed rows (position ids restart per example), NF4 base, LoRA, checkpointing: the
    loss and LoRA gradients with Liger's kernels match the stock layers' within bf16 noise."""
    pytest.importorskip("liger_kernel.transformers.monkey_patch", reason="liger-kernel absent")
    from serifu.accel.varlen import use_varlen_attention
    from serifu.modeling import load_model, resolve_base
    from serifu.training.examples import Example
    from serifu.training.kernels import apply_kernels
    from serifu.training.loss import loss_sum
    from serifu.training.trainer import add_lora, collate

    base = resolve_base(model_id)
    model = load_model(base, quantize=True, device="cuda")
    cfg = TrainConfig(gradient_checkpointing=True, kernels="liger", loss_kernel=loss_kernel)
    cfg.lora.dropout = 0.0
    peft_model = add_lora(model, cfg, base.lora_targets, quantized=True)
    use_varlen_attention(peft_model)
    peft_model.train()
    torch.manual_seed(1)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # gradients then reach lora_A through the patched layers
            p.data.normal_(0, 0.02)
    ids = [3 + (7 * i) % 50 for i in range(40)]
    examples = [Example(ids[:15], ids[:15]), Example(ids[15:], ids[15:])]
    batch = collate(examples, packing=True, pad_id=0, device="cuda")

    def step() -> tuple[float, dict[str, torch.Tensor]]:
        peft_model.zero_grad(set_to_none=True)
        total, n = loss_sum(peft_model, batch)
        total.backward()
        grads = {k: p.grad.float() for k, p in peft_model.named_parameters() if p.grad is not None}
        return float(total) / n, grads

    stock_loss, stock_grads = step()
    undo = restore_point(peft_model)
    decision = apply_kernels(peft_model, choose_kernels(peft_model, "liger", loss_kernel))
    assert decision.kernels == "liger" and decision.patched.get("rope") == 1
    liger_loss, liger_grads = step()
    undo()
    assert abs(liger_loss - stock_loss) <= 1e-2 * abs(stock_loss)
    assert stock_grads.keys() == liger_grads.keys() and stock_grads
    for k, g in stock_grads.items():
        assert float((liger_grads[k] - g).norm()) <= 0.05 * float(g.norm()) + 1e-6, k
    assert step()[0] == stock_loss  # the restore point gives the stock model back
