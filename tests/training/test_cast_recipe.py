"""The sample cast's shipped adapters were trained with the recipe the repository states:
configs/cast-adapter.toml, with each heroine's exceptions from
configs/cast-adapter-overrides.toml (as scripts/train_cast_adapters.py applies them)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAST = ROOT / "packages" / "core" / "src" / "serifu" / "cast"
RECIPE_KEYS = (
    "epochs",
    "real_only_epochs",
    "learning_rate",
    "batch_size",
    "lr_scheduler",
    "warmup_steps",
    "system_prompt",
    "packing",
    "seed",
)


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(ROOT / "scripts" / "train_cast_adapters.py"))


def shipped() -> list[Path]:
    return sorted(CAST.glob("*/adapters/gemma-3-270m/serifu.json"))


def test_every_heroine_has_a_shipped_adapter() -> None:
    assert len(shipped()) == 8


@pytest.mark.parametrize("info_file", shipped(), ids=lambda p: p.parts[-4])
def test_shipped_adapter_follows_the_stated_recipe(script: dict, info_file: Path) -> None:
    cid = info_file.parts[-4]
    overrides = script["read_overrides"](str(ROOT / "configs" / "cast-adapter-overrides.toml"))
    cfg = script["heroine_config"](ROOT / "configs" / "cast-adapter.toml", overrides.get(cid, []))
    recipe = cfg.train.model_dump()
    info = json.loads(info_file.read_text(encoding="utf-8"))
    trained = info["config"]
    for key in RECIPE_KEYS:
        assert trained[key] == recipe[key], f"{cid}: {key} trained {trained[key]!r}"
    assert trained["lora"] == recipe["lora"]
    assert info["dataset"]["options"]["augment"] == cfg.data.augment


def test_overrides_name_heroines_and_valid_keys(script: dict, tmp_path: Path) -> None:
    overrides = script["read_overrides"](str(ROOT / "configs" / "cast-adapter-overrides.toml"))
    assert set(overrides) <= {p.parts[-4] for p in shipped()}
    bad = tmp_path / "bad.toml"
    bad.write_text("[hina.train]\nepoch = 3\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="epoch"):
        script["heroine_config"](
            ROOT / "configs" / "cast-adapter.toml", script["read_overrides"](str(bad))["hina"]
        )
    assert script["read_overrides"]("") == {}


@pytest.mark.parametrize("info_file", shipped(), ids=lambda p: p.parts[-4])
def test_shipped_soups_are_the_stated_soups(script: dict, info_file: Path) -> None:
    """A heroine with an [ID.soup] table ships the soup of those seeds at that rank (its LoRA
    config says the rank); the others ship one training run."""
    cid = info_file.parts[-4]
    soups = script["read_soups"](str(ROOT / "configs" / "cast-adapter-overrides.toml"))
    info = json.loads(info_file.read_text(encoding="utf-8"))
    if cid not in soups:
        assert "soup" not in info
        return
    assert info["soup"]["seeds"] == soups[cid]["seeds"]
    assert info["soup"]["rank"] == soups[cid]["rank"]
    config = json.loads((info_file.parent / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["r"] == soups[cid]["rank"]
    assert (
        config["lora_alpha"] / config["r"]
        == info["config"]["lora"]["alpha"] / info["config"]["lora"]["r"]
    )


def test_a_bad_soup_table_is_refused(script: dict, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[hina.soup]\nseeds = [0]\nrank = 8\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="two or more"):
        script["read_soups"](str(bad))
    good = tmp_path / "good.toml"
    good.write_text("[hina.train]\nepochs = 3\n[hina.soup]\nseeds = [0, 1]\n", encoding="utf-8")
    assert script["read_soups"](str(good)) == {"hina": {"seeds": [0, 1], "rank": None}}
    assert script["read_overrides"](str(good)) == {"hina": ["train.epochs=3"]}


def test_a_soup_recipe_trains_each_seed_and_averages(
    script: dict, dialogue_dir: Path, tmp_path: Path
) -> None:
    """``train_soup`` (what an [ID.soup] table makes the script do): one real training run per
    seed, then their soup at the stated rank as her adapter."""
    from serifu.config import load_config

    cfg = load_config(
        None,
        ["train.max_steps=1", "train.batch_size=4", "train.lora.r=2", "train.lora.alpha=4"],
        search_cwd=False,
    ).train
    script["train_soup"]("tiny-gptj", dialogue_dir, tmp_path, cfg, {"seeds": [0, 1], "rank": 3})
    members = [tmp_path / f"seed-{s}" / "adapter" / "serifu.json" for s in (0, 1)]
    assert [json.loads(m.read_text())["config"]["seed"] for m in members] == [0, 1]
    info = json.loads((tmp_path / "adapter" / "serifu.json").read_text())
    assert info["soup"]["seeds"] == [0, 1] and info["soup"]["rank"] == 3
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (3, 6)
