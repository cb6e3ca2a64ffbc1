"""``serifu export``: the merged model answers like base + adapter; a broken adapter, one
for another base or an --out over the adapter is a clear error; old adapters get their
real base name back (scripts/fix_adapter_base.py)."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import pytest
import torch

from serifu.cli import main
from serifu.config.train import TrainConfig
from serifu.training import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def adapter(
    dialogue_dir: Path, tmp_path_factory: pytest.TempPathFactory, offline_env: None
) -> Path:
    out = tmp_path_factory.mktemp("export") / "adapter"
    cfg = TrainConfig(
        max_steps=3, batch_size=4, learning_rate=3e-2, save_steps=0, eval=False, report_to="none"
    )
    train("tiny-llama", dialogue_dir, out, cfg, progress=False)
    return out


def test_export_merges_into_a_model_that_answers_like_base_plus_adapter(
    adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from serifu.modeling import load_model, resolve_base

    out = tmp_path / "merged"
    assert main(["export", str(adapter), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "serifu.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    base = load_model(resolve_base("tiny-llama"), quantize=False, device="cpu")
    plain_logits = None
    probe = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.no_grad():
        plain_logits = base(input_ids=probe).logits.clone()
        tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
        expected = tuned(input_ids=probe).logits
        got = merged(input_ids=probe).logits
    assert not torch.allclose(expected, plain_logits, atol=1e-4)  # the adapter does something
    assert torch.allclose(got, expected, atol=1e-4)


def test_export_refuses_another_base_a_broken_adapter_and_out_over_it(
    adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "merged")
    assert main(["export", str(adapter), "--model", "tiny-gptj", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "trained on the base model 'tiny-llama', not 'tiny-gptj'" in err
    assert "Traceback" not in err

    assert main(["export", str(adapter), "--out", str(adapter)]) == 2
    assert "input" in capsys.readouterr().err
    assert (adapter / "adapter_model.safetensors").is_file()

    broken = tmp_path / "broken"
    shutil.copytree(adapter, broken)
    (broken / "adapter_config.json").write_text("{not json", encoding="utf-8")
    assert main(["export", str(broken), "--out", out]) == 2
    assert "adapter_config.json" in capsys.readouterr().err
    shutil.copy(adapter / "adapter_config.json", broken / "adapter_config.json")
    (broken / "adapter_model.safetensors").unlink()
    assert main(["export", str(broken), "--out", out]) == 2
    assert "adapter_model.safetensors is missing" in capsys.readouterr().err
    (broken / "adapter_model.safetensors").write_bytes(b"\x00" * 16)
    assert main(["export", str(broken), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "does not fit this base model or is damaged" in err and "Traceback" not in err
    assert not Path(out).exists()


def test_fix_adapter_base_script_rewrites_config_card_and_info(
    adapter: Path, tmp_path: Path
) -> None:
    from huggingface_hub import ModelCard

    old = tmp_path / "old"
    shutil.copytree(adapter, old)
    cache_path = "/tmp/serifu-cache/models/tiny-llama"
    config = json.loads((old / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = cache_path
    (old / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    info = json.loads((old / "serifu.json").read_text(encoding="utf-8"))
    info.pop("base_name")
    info["base_source"] = cache_path
    (old / "serifu.json").write_text(json.dumps(info), encoding="utf-8")
    card = (old / "README.md").read_text(encoding="utf-8")
    (old / "README.md").write_text(
        card.replace("base_model: tiny-llama", f"base_model: {cache_path}"), encoding="utf-8"
    )
    script = runpy.run_path(str(ROOT / "scripts" / "fix_adapter_base.py"))
    assert script["main"]([str(old), "--dry-run"]) == 0
    assert cache_path in (old / "adapter_config.json").read_text(encoding="utf-8")
    assert script["main"]([str(old)]) == 0
    config = json.loads((old / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["base_model_name_or_path"] == "tiny-llama"
    assert ModelCard.load(old / "README.md").data.base_model == "tiny-llama"
    fixed = json.loads((old / "serifu.json").read_text(encoding="utf-8"))
    assert fixed["base_name"] == "tiny-llama" and "base_source" not in fixed
    assert script["main"]([str(old), "--base", "someone/tiny-llama"]) == 0
    assert ModelCard.load(old / "README.md").data.base_model == "someone/tiny-llama"
    assert script["main"]([str(tmp_path / "missing")]) == 2
