"""``serifu soup``: adapters of one recipe averaged into one, exactly or cut back to a rank."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from serifu.cli import main
from serifu.errors import SerifuError
from serifu.training.soup import average_adapters


def _adapter(folder: Path, seed: int, r: int = 4) -> Path:
    """A LoRA adapter of tiny-gemma with nonzero A and B (as trained), saved like PEFT does."""
    from peft import LoraConfig, get_peft_model

    from serifu.modeling import load_model, resolve_base

    base = resolve_base("tiny-gemma")
    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(base.lora_targets))
    peft = get_peft_model(load_model(base, quantize=False, device="cpu"), cfg)
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    peft.save_pretrained(str(folder))
    (folder / "serifu.json").write_text(json.dumps({"base_model": "tiny-gemma"}))
    return folder


def _merged(folder: Path) -> dict[str, torch.Tensor]:
    """The base's weights with the adapter merged in."""
    from peft import PeftModel

    from serifu.modeling import load_model, resolve_base

    model = load_model(resolve_base("tiny-gemma"), quantize=False, device="cpu")
    merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def _base() -> dict[str, Any]:
    from serifu.modeling import load_model, resolve_base

    model = load_model(resolve_base("tiny-gemma"), quantize=False, device="cpu")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_soup_is_the_exact_average_of_the_deltas(tmp_path: Path) -> None:
    a, b, c = (_adapter(tmp_path / n, s) for n, s in (("a", 1), ("b", 2), ("c", 3)))
    info = average_adapters([a, b, c], tmp_path / "soup")
    assert info["soup"]["rank"] == 12 and info["base_model"] == "tiny-gemma"
    config = json.loads((tmp_path / "soup" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (12, 24)  # the members' scaling, 2
    base, got = _base(), _merged(tmp_path / "soup")
    members = [_merged(f) for f in (a, b, c)]
    key = "model.layers.0.self_attn.q_proj.weight"
    want = base[key] + sum(m[key] - base[key] for m in members) / 3
    assert torch.allclose(got[key], want, atol=1e-6)
    assert not torch.allclose(got[key], members[0][key], atol=1e-4)  # not just one member


def test_a_rank_keeps_the_best_approximation(tmp_path: Path) -> None:
    """Averaging an adapter with itself and cutting back to its own rank gives it back; a lower
    rank keeps less of the delta, and says how much."""
    a = _adapter(tmp_path / "a", 1)
    b = tmp_path / "b"
    b.mkdir()
    for f in a.iterdir():
        (b / f.name).write_bytes(f.read_bytes())
    info = average_adapters([a, b], tmp_path / "same", rank=4)
    assert info["soup"]["energy_kept_min"] == pytest.approx(1.0, abs=1e-6)
    config = json.loads((tmp_path / "same" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    key = "model.layers.1.mlp.down_proj.weight"
    want, got = _merged(a)[key], _merged(tmp_path / "same")[key]
    assert torch.allclose(got, want, atol=1e-5)
    c = _adapter(tmp_path / "c", 7)
    low = average_adapters([a, c], tmp_path / "low", rank=2)
    assert 0.0 < low["soup"]["energy_kept_min"] < 0.99


def test_the_cut_is_the_truncated_svd_of_the_product() -> None:
    """The cut takes the SVD of the factors' small QR core: the same best rank-k product (and
    energy share) as the SVD of the full out × in delta."""
    from serifu.training.soup import _truncate

    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(12, 50, generator=gen), torch.randn(40, 12, generator=gen)
    new_a, new_b, kept = _truncate(a, b, 3)
    u, s, vh = torch.linalg.svd(b.double() @ a.double(), full_matrices=False)
    best = (u[:, :3] * s[:3]) @ vh[:3]
    assert torch.allclose((new_b @ new_a).double(), best, atol=1e-4)
    assert kept == pytest.approx(float((s[:3] ** 2).sum() / (s**2).sum()), abs=1e-9)


def test_unlike_adapters_are_refused_with_the_file(tmp_path: Path) -> None:
    a = _adapter(tmp_path / "a", 1, r=4)
    b = _adapter(tmp_path / "b", 2, r=2)
    with pytest.raises(SerifuError, match="share r") as err:
        average_adapters([a, b], tmp_path / "soup")
    assert str(b / "adapter_config.json") in str(err.value)
    with pytest.raises(SerifuError, match="at least two"):
        average_adapters([a], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_cli_soup_writes_an_adapter_chat_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _adapter(tmp_path / "a", 1), _adapter(tmp_path / "b", 2)
    out = tmp_path / "soup"
    assert main(["soup", str(a), str(b), "--out", str(out), "--rank", "4"]) == 0
    assert "rank 4" in capsys.readouterr().out
    code = main(
        ["chat", "--adapter", str(out), "--character", "rei", "--once", "こんにちは",
         "--max-new-tokens", "4"]
    )  # fmt: skip
    assert code == 0
    assert main(["soup", str(a), str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_the_soup_keeps_the_union_of_her_tokens_when_every_member_has_them(
    tmp_path: Path,
) -> None:
    from serifu.inference.vocab import read_adapter_vocabulary, write_adapter_ids

    a, b = _adapter(tmp_path / "a", 1), _adapter(tmp_path / "b", 2)
    write_adapter_ids(a, [5, 9])
    write_adapter_ids(b, [9, 12])
    average_adapters([a, b], tmp_path / "soup")
    assert read_adapter_vocabulary(tmp_path / "soup") == [5, 9, 12]
    (b / "vocabulary.json").unlink()  # a member without them: the soup goes without
    average_adapters([a, b], tmp_path / "soup2")
    assert read_adapter_vocabulary(tmp_path / "soup2") is None


def test_the_soup_keeps_her_members_exchanges(tmp_path: Path) -> None:
    from serifu.retrieval.examples import read_adapter_examples, write_adapter_examples

    a, b = _adapter(tmp_path / "a", 1), _adapter(tmp_path / "b", 2)
    write_adapter_examples(a, [("おはよう", "おはようさん"), ("元気？", "元気やで")])
    write_adapter_examples(b, [("元気？", "元気やで"), ("またね", "ほな")])
    average_adapters([a, b], tmp_path / "soup")
    assert read_adapter_examples(tmp_path / "soup") == [
        ("おはよう", "おはようさん"),
        ("元気？", "元気やで"),
        ("またね", "ほな"),
    ]
