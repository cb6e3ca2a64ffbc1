"""docs/training.md names every ``[train]`` key a user can set (the list drifted once:
four settings added since were missing from it)."""

from __future__ import annotations

from pathlib import Path

from serifu.config.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_train_key_is_listed() -> None:
    doc = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    start = doc.index("`[train]` in `serifu.toml`")
    listed = doc[start : doc.index("Values are checked", start)]
    words = {w.strip(" ,.()\n*") for w in listed.replace("\n", " ").split(" ")}
    missing = [k for k in TrainConfig.model_fields if k not in words and f"{k}.*" not in listed]
    assert not missing, f"add to docs/training.md's list of [train] keys: {missing}"
