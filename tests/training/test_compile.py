"""``train.compile``: the setting in the config, the policy from plain values, "auto" = off
on the CPU (recorded in ``serifu.json``), and — where inductor can compile on this CPU (a
C compiler) — a compiled step whose loss and LoRA gradients match the eager step's, with
packed rows of another width not recompiling, and a run that records what it compiled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from serifu.config import load_config
from serifu.config.train import TrainConfig
from serifu.errors import SerifuError
from serifu.training.compile import (
    AUTO_MAX_PARAMS,
    AUTO_MIN_STEPS,
    choose_compile,
    compiler_unavailable,
    decide,
    uncompile,
    use_compile,
)

NO_COMPILER = compiler_unavailable("cpu")


def test_config_takes_the_setting_and_names_a_bad_value(tmp_path: Path) -> None:
    from serifu.training.model_setup import fingerprint

    assert TrainConfig().compile == "off"  # opt-in until measured on a GPU
    assert load_config(None, ['train.compile="on"'], search_cwd=False).train.compile == "on"
    toml = tmp_path / "serifu.toml"
    toml.write_text('[train]\ncompile = "max"\n', encoding="utf-8")
    with pytest.raises(SerifuError) as err:
        load_config(toml)
    assert str(toml) in str(err.value) and "'train.compile'" in str(err.value)
    assert "'max'" in str(err.value)
    # compiling changes rounding only: a run may resume with another setting
    assert fingerprint("m", "x", TrainConfig(compile="on")) == fingerprint("m", "x", TrainConfig())


def test_policy_from_plain_values() -> None:
    small, big = 270_000_000, 7_000_000_000
    on = decide("auto", device="cuda:0", n_params=small, compiler=None)
    assert on.compile == "on" and on.setting == "auto" and "270M" in on.reason
    large = decide("auto", device="cuda:0", n_params=big, compiler=None)
    assert large.compile == "off" and "7.0B" in large.reason and big > AUTO_MAX_PARAMS
    cpu = decide("auto", device="cpu", n_params=small, compiler=None)
    assert cpu.compile == "off" and cpu.reason.startswith("auto: the model is on cpu")
    short = decide("auto", device="cuda", n_params=small, compiler=None, steps=AUTO_MIN_STEPS - 1)
    assert short.compile == "off" and f"{AUTO_MIN_STEPS - 1} steps" in short.reason
    long = decide("auto", device="cuda", n_params=small, compiler=None, steps=AUTO_MIN_STEPS)
    assert long.compile == "on" and f"{AUTO_MIN_STEPS} steps" in long.reason
    assert decide("on", device="cuda", n_params=small, compiler=None, steps=1).compile == "on"
    again = decide("auto", device="cuda", n_params=small, compiler=None, steps=5, warm=True)
    assert again.compile == "on" and "compiled earlier in this process" in again.reason
    no_triton = decide("auto", device="cuda", n_params=small, compiler="triton is not installed")
    assert no_triton.compile == "off" and "triton" in no_triton.reason
    assert decide("on", device="cpu", n_params=big, compiler=None).compile == "on"
    assert decide("off", device="cuda", n_params=small, compiler=None).compile == "off"
    with pytest.raises(SerifuError, match="train.compile = 'on' cannot be used: no C compiler"):
        decide("on", device="cpu", n_params=small, compiler="no C compiler found")
    with pytest.raises(SerifuError, match="train.compile must be one of 'auto', 'on', 'off'"):
        decide("fast", device="cuda", n_params=small, compiler=None)


def test_auto_is_off_on_the_cpu_and_recorded(lines_dir: Path, tmp_path: Path) -> None:
    from serifu.training import train

    cfg = TrainConfig(
        max_steps=1, max_tokens=256, save_steps=0, eval=False, report_to="none", compile="auto"
    )
    result = train("tiny-llama", lines_dir, tmp_path / "a", cfg, progress=False)
    info = json.loads((tmp_path / "a" / "serifu.json").read_text(encoding="utf-8"))
    assert info["config"]["compile"] == "auto"
    assert info["compile"]["compile"] == "off" and info["compile"]["layers"] == 0
    assert "the model is on cpu" in info["compile"]["reason"]
    assert result.summary()["compile"] == "off"


def _lora_model(model_id: str, checkpointing: bool) -> Any:
    from serifu.modeling import load_model, resolve_base
    from serifu.training.trainer import add_lora

    base = resolve_base(model_id)
    model = load_model(base, quantize=True, device="cpu")
    cfg = TrainConfig(gradient_checkpointing=checkpointing)
    cfg.lora.dropout = 0.0  # compiled dropout draws other random numbers than eager
    peft_model = add_lora(model, cfg, base.lora_targets, quantized=True)
    peft_model.train()
    torch.manual_seed(1)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # gradients then reach lora_A through the 4-bit layers
            p.data.normal_(0, 0.02)
    return peft_model


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor cannot compile here: {NO_COMPILER}")
def test_compiled_step_matches_the_eager_step() -> None:
    """NF4 base, LoRA, packed rows, gradient checkpointing around the compiled layers."""
    from serifu.training.compile import compile_stats, decoder_layers
    from serifu.training.examples import Example
    from serifu.training.loss import loss_sum
    from serifu.training.trainer import collate

    # An earlier test in this process may have compiled the same layer class for replies
    # (under no_grad): dynamo would then count this test's first compile as a recompile
    # ("GLOBAL_STATE changed: grad_mode"). Start from empty compile caches.
    torch._dynamo.reset()
    peft_model = _lora_model("tiny-llama", checkpointing=True)
    assert choose_compile(peft_model, "auto").compile == "off"  # the CPU: auto stays eager
    ids = [3 + (7 * i) % 50 for i in range(64)]

    def batch(cut: int, end: int) -> dict[str, Any]:
        examples = [Example(ids[:cut], ids[:cut]), Example(ids[cut:end], ids[cut:end])]
        return collate(examples, packing=True, pad_id=0, device="cpu")

    def step(b: dict[str, Any]) -> tuple[float, dict[str, torch.Tensor]]:
        peft_model.zero_grad(set_to_none=True)
        total, n = loss_sum(peft_model, b)
        total.backward()
        grads = {k: p.grad.clone() for k, p in peft_model.named_parameters() if p.grad is not None}
        return float(total) / n, grads

    first = batch(15, 40)
    eager_loss, eager_grads = step(first)
    decision = use_compile(peft_model, "on")
    assert decision.compile == "on" and decision.layers == 2
    assert decision.layer_class == "LlamaDecoderLayer"
    compiled_loss, compiled_grads = step(first)
    assert abs(compiled_loss - eager_loss) <= 1e-5 * abs(eager_loss)
    assert compiled_grads.keys() == eager_grads.keys() and len(eager_grads) == 8
    for k, g in eager_grads.items():
        assert float((compiled_grads[k] - g).norm()) <= 1e-4 * float(g.norm()) + 1e-9, k
    step(batch(9, 64))  # other widths and boundaries: the same compiled layer
    stats = compile_stats()
    assert stats["graphs"] >= 1 and stats["graph_breaks"] == 0 and stats["recompiles"] == 0
    assert stats["compile_s"] > 0
    assert uncompile(peft_model) == 2
    assert not any("forward" in m.__dict__ for m in decoder_layers(peft_model))
    assert step(first)[0] == eager_loss  # the layers' own forward again


@pytest.mark.skipif(NO_COMPILER is not None, reason=f"inductor cannot compile here: {NO_COMPILER}")
def test_a_compiled_run_records_what_it_compiled(lines_dir: Path, tmp_path: Path) -> None:
    from serifu.training import Trainer
    from serifu.training.compile import decoder_layers

    cfg = TrainConfig(
        max_steps=2,
        max_tokens=256,
        save_steps=0,
        eval=True,
        report_to="none",
        compile="on",
        gradient_checkpointing=True,
    )
    cfg.lora.dropout = 0.0  # the layer compiled by the test above: no second compile
    trainer = Trainer("tiny-llama", lines_dir, tmp_path / "c", cfg, progress=False)
    result = trainer.fit()
    record = json.loads((tmp_path / "c" / "serifu.json").read_text(encoding="utf-8"))["compile"]
    assert record["compile"] == "on" and record["reason"] == "set in the config"
    assert record["layers"] == 2 and record["stats"]["graph_breaks"] == 0
    assert set(record["stats"]) >= {"compile_s", "graphs", "recompiles", "graph_break_reasons"}
    assert result.summary()["compile"] == "on" and result.eval_loss is not None
    assert all(torch.isfinite(torch.tensor(result.info["loss"])))
    # when training ends the layers get their own forward back (chat after train is eager)
    assert not any("forward" in m.__dict__ for m in decoder_layers(trainer.model))
