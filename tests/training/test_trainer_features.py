"""The Trainer's callbacks (TensorBoard, periodic validation, user callbacks), gradient
accumulation and gradient checkpointing; what an adapter says about its base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from serifu.config.train import LoraConfigModel, TrainConfig
from serifu.training import train
from serifu.training.callbacks import Callback

CFG = TrainConfig(max_steps=4, batch_size=4, learning_rate=5e-3, save_steps=0, eval=False)


def _scalars(logs: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logs))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_train_begin(self, trainer: Any) -> None:
        self.events.append(("begin", trainer.state.step, trainer.total_steps))

    def on_step_end(self, trainer: Any, step: int, loss: float) -> None:
        self.events.append(("step", step, loss))

    def on_evaluate(self, trainer: Any, step: int, loss: float) -> None:
        self.events.append(("eval", step, loss))

    def on_train_end(self, trainer: Any) -> None:
        self.events.append(("end",))


def test_tensorboard_periodic_validation_and_callbacks_leave_the_adapter_unchanged(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    quiet = train(
        "tiny-llama",
        dialogue_dir,
        tmp_path / "quiet",
        CFG.model_copy(update={"report_to": "none"}),
        progress=False,
    )
    assert not (tmp_path / "quiet" / "logs").exists()
    rec = Recorder()
    cfg = CFG.model_copy(update={"eval": True, "eval_steps": 2})
    logged = train("tiny-llama", dialogue_dir, tmp_path / "tb", cfg, callbacks=[rec])
    logs = tmp_path / "tb" / "logs"
    assert [s for s, _ in _scalars(logs, "train/loss")] == [1, 2, 3, 4]
    assert [v for _, v in _scalars(logs, "train/loss")] == pytest.approx(logged.info["loss"])
    assert [s for s, _ in _scalars(logs, "train/learning_rate")] == [1, 2, 3, 4]
    assert [s for s, _ in _scalars(logs, "eval/loss")] == [2, 4]  # periodic + final
    assert logged.info["eval_losses"].keys() == {2, 4}
    assert logged.info["eval_losses"][4] == logged.eval_loss
    # built-in callbacks (here: periodic validation) run before the user's
    kinds = [e[:2] for e in rec.events[1:-1]]
    assert kinds == [("step", 1), ("eval", 2), ("step", 2), ("step", 3), ("step", 4), ("eval", 4)]
    assert rec.events[-1] == ("end",)
    assert rec.events[0] == ("begin", 0, 4)
    assert quiet.info["loss"] == logged.info["loss"]  # logging and evaluating change nothing
    a = load_file(str(tmp_path / "quiet" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "tb" / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


class StopAfter(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Any, step: int, loss: float) -> None:
        trainer.should_stop = step == self.step


def test_a_callback_can_end_the_run_early(dialogue_dir: Path, tmp_path: Path) -> None:
    cfg = CFG.model_copy(update={"report_to": "none", "save_steps": 1})
    result = train(
        "tiny-llama",
        dialogue_dir,
        tmp_path / "early",
        cfg,
        callbacks=[StopAfter(2)],
        progress=False,
    )
    assert result.steps == 2 and len(result.info["loss"]) == 2
    assert (tmp_path / "early" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / ".early.work").exists()


def test_gradient_accumulation_equals_one_big_batch(dialogue_dir: Path, tmp_path: Path) -> None:
    base = CFG.model_copy(
        update={"max_steps": 2, "report_to": "none", "lora": LoraConfigModel(dropout=0.0)}
    )
    big = train(
        "tiny-llama",
        dialogue_dir,
        tmp_path / "big",
        base.model_copy(update={"batch_size": 8}),
        progress=False,
    )
    acc = train(
        "tiny-llama",
        dialogue_dir,
        tmp_path / "acc",
        base.model_copy(update={"batch_size": 4, "gradient_accumulation_steps": 2}),
        progress=False,
    )
    assert acc.steps == big.steps == 2
    assert acc.info["loss"] == pytest.approx(big.info["loss"], rel=1e-5)
    a = load_file(str(tmp_path / "big" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "acc" / "adapter_model.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    one = train(
        "tiny-llama",
        dialogue_dir,
        tmp_path / "one",
        base.model_copy(update={"batch_size": 4, "max_steps": 4}),
        progress=False,
    )
    assert acc.info["tokens"] == one.info["tokens"]  # the same examples, half the updates


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    from serifu.modeling import load_model, load_tokenizer, resolve_base
    from serifu.training.examples import encode_rows
    from serifu.training.loss import loss_sum
    from serifu.training.trainer import add_lora, collate

    base = resolve_base("tiny-llama")
    tok = load_tokenizer(base)
    rows = [{"text": "はい、参りましょう\n"}, {"text": "別に。礼を言われるほどのことじゃない。\n"}]
    examples = encode_rows(
        rows, fmt="lines", tokenizer=tok, template=None, system=None,
        add_special_tokens=True, max_length=64,
    )  # fmt: skip
    batch = collate(examples, packing=True, pad_id=0, device="cpu")
    grads = {}
    for on in (False, True):
        torch.manual_seed(0)
        model = load_model(base, quantize=True, device="cpu")
        cfg = TrainConfig(gradient_checkpointing=on, lora=LoraConfigModel(dropout=0.0))
        peft_model = add_lora(model, cfg, base.lora_targets, quantized=True)
        peft_model.train()
        inner = peft_model.get_base_model()
        assert bool(getattr(inner, "is_activation_checkpointing", False)) == on or (
            getattr(inner, "is_gradient_checkpointing", False) == on
        )
        total, n = loss_sum(peft_model, batch)
        (total / n).backward()
        grads[on] = {
            k: p.grad.clone() for k, p in peft_model.named_parameters() if p.grad is not None
        }
    assert grads[True].keys() == grads[False].keys() and grads[True]
    for key, g in grads[False].items():
        assert torch.allclose(grads[True][key], g, atol=1e-6), key


def test_gradient_checkpointing_trains_through_the_cli_path(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    cfg = CFG.model_copy(
        update={"max_steps": 2, "gradient_checkpointing": True, "report_to": "none"}
    )
    result = train("tiny-gemma", dialogue_dir, tmp_path / "gc", cfg, progress=False)
    assert result.steps == 2 and all(map(torch.isfinite, map(torch.tensor, result.info["loss"])))
    assert json.loads((tmp_path / "gc" / "serifu.json").read_text())["config"][
        "gradient_checkpointing"
    ]


def test_adapter_names_its_real_base_and_has_a_hub_card(dialogue_dir: Path, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from serifu.modeling import resolve_base
    from serifu.training.outputs import adapter_base_name

    out = tmp_path / "adapter"
    train("tiny-llama", dialogue_dir, out, CFG.model_copy(update={"max_steps": 1}), progress=False)
    config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == "tiny-llama"  # the plugin id, not its cache
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "tiny-llama" and card.data.library_name == "peft"
    assert "tiny-llama" in card.text and "/.cache" not in (out / "README.md").read_text()
    info = json.loads((out / "serifu.json").read_text(encoding="utf-8"))
    assert info["base_name"] == "tiny-llama" and "base_source" not in info
    hub = resolve_base("line-3.6b")  # a plugin whose weights come from the hub
    assert adapter_base_name(hub) == "line-corporation/japanese-large-lm-3.6b-instruction-sft"
    assert adapter_base_name(resolve_base("someone/some-model")) == "someone/some-model"
    # the embedded default converts a GGUF of Gemma 3 270M: its adapters name the original
    assert adapter_base_name(resolve_base("gemma-3-270m")) == "google/gemma-3-270m"
