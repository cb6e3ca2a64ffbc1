"""Each tiny architecture trains in 4-bit: loss falls, LoRA changes, the base does not, reload is exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from serifu.config.train import TrainConfig
from serifu.modeling import load_model, load_tokenizer, resolve_base
from serifu.training import train
from serifu.training.examples import encode_rows
from serifu.training.loss import loss_sum
from serifu.training.trainer import add_lora, collate

ARCHS = ["tiny-neox", "tiny-gptj", "tiny-llama", "tiny-gemma"]


@pytest.mark.parametrize("model_id", ARCHS)
def test_qlora_step_changes_lora_only_and_reloads_exactly(model_id: str, tmp_path: Path) -> None:
    from peft import PeftModel

    base = resolve_base(model_id)
    tok = load_tokenizer(base)
    model = load_model(base, quantize=True, device="cpu")
    assert type(model.get_output_embeddings()).__name__ == "Linear"  # lm_head stays unquantised
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    cfg = TrainConfig(learning_rate=1e-2)
    peft_model = add_lora(model, cfg, base.lora_targets, quantized=True)
    base_before = {
        k: v.detach().clone() for k, v in peft_model.named_parameters() if "lora_" not in k
    }
    lora_before = {k: v.detach().clone() for k, v in peft_model.named_parameters() if "lora_" in k}
    rows = [{"text": "はい、参りましょう\n"}, {"text": "別に。礼を言われるほどのことじゃない。\n"}]
    examples = encode_rows(
        rows,
        fmt="lines",
        tokenizer=tok,
        template=None,
        system=None,
        add_special_tokens=True,
        max_length=64,
    )
    batch = collate(examples, packing=True, pad_id=0, device="cpu")
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    losses = []
    for _ in range(4):
        total, n = loss_sum(peft_model, batch)
        (total / n).backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(total) / n)
    assert losses[-1] < losses[0]
    after = dict(peft_model.named_parameters())
    assert any(not torch.equal(after[k], v) for k, v in lora_before.items())
    assert all(torch.equal(after[k].detach(), v) for k, v in base_before.items())
    peft_model.eval()
    probe = torch.tensor([examples[1].input_ids])
    with torch.no_grad():
        expected = peft_model(input_ids=probe).logits
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    reloaded = PeftModel.from_pretrained(
        load_model(base, quantize=True, device="cpu"), str(tmp_path / "adapter")
    ).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=probe).logits, expected, atol=1e-5)


def test_train_writes_adapter_and_run_files(dialogue_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    cfg = TrainConfig(max_steps=4, batch_size=4, learning_rate=1e-2, save_steps=0)
    result = train("tiny-llama", dialogue_dir, out, cfg, progress=False)
    for name in ("adapter_model.safetensors", "adapter_config.json", "serifu.json", "README.md"):
        assert (out / name).is_file(), name
    info = json.loads((out / "serifu.json").read_text(encoding="utf-8"))
    assert info["base_model"] == "tiny-llama" and info["steps"] == 4 and len(info["loss"]) == 4
    assert info["system_prompt"] is True and info["dataset"]["character_id"] == "rei"
    assert info["loss_last"] < info["loss_first"]
    assert info["tokens_per_s"] > 0 and info["eval_loss"] is not None
    assert "tiny-llama" in (out / "README.md").read_text(encoding="utf-8")
    assert result.summary()["steps"] == 4
    assert not any(
        p.name.startswith(".adapter") for p in tmp_path.iterdir()
    )  # no temp/work leftovers


def test_report_recipe_runs_and_learns(tmp_path: Path) -> None:
    from serifu.training.recipe import run_recipe

    texts = ["はい、参りましょう\n", "別に。\n", "職員室なら一階。\n"] * 6
    result = run_recipe(
        "tiny-neox", texts, tmp_path / "recipe", max_steps=4, learning_rate=1e-2, device="cpu"
    )
    assert result["steps"] == 4 and len(result["loss"]) == 4
    assert result["loss"][-1] < result["loss"][0] and result["tokens_per_s"] > 0


def test_uint4_grid_training_fits_the_uint4_reply_base(dialogue_dir: Path, tmp_path: Path) -> None:
    """``quant_type = "uint4"`` trains the LoRA over the base rounded exactly as
    ``--weights uint4`` rounds it: the reply model then computes the trained model's logits,
    which the full-precision base under the same adapter does not."""
    from serifu.inference import load_chatbot
    from serifu.training.trainer import Trainer

    cfg = TrainConfig(
        max_steps=3, batch_size=4, learning_rate=1e-2, save_steps=0, eval=False, quant_type="uint4"
    )
    cfg.lora.dropout = 0.0
    trainer = Trainer("tiny-gemma", dialogue_dir, tmp_path / "u", cfg, progress=False)
    trainer.fit()
    info = json.loads((tmp_path / "u" / "serifu.json").read_text(encoding="utf-8"))
    assert info["config"]["quant_type"] == "uint4"
    assert "uint4 grid" in (tmp_path / "u" / "README.md").read_text(encoding="utf-8")
    assert not any(type(m).__name__ == "Linear4bit" for m in trainer.model.modules())
    probe = torch.tensor([[2, 5, 17, 33, 9, 41]])
    trainer.model.eval()
    with torch.no_grad():
        trained = trainer.model(input_ids=probe).logits
    for weights, same in (("uint4", True), ("bf16", False)):
        bot = load_chatbot(
            model="tiny-gemma", adapter=tmp_path / "u", device="cpu", weights=weights, best_of=1
        )
        with torch.no_grad():
            logits = bot.model(input_ids=probe).logits
        assert torch.allclose(logits, trained, atol=1e-4) is same, weights
        assert bot.notice is None  # trained for uint4: nothing to warn about


def test_uint4_grid_needs_a_4bit_base() -> None:
    with pytest.raises(ValueError, match="needs quantize_4bit"):
        TrainConfig(quantize_4bit=False, quant_type="uint4")
