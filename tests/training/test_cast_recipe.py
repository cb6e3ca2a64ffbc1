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
