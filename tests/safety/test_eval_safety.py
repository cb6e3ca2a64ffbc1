"""``serifu eval`` never scores one character as another, nor an adapter on its training replies."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from serifu.cli import main
from serifu.config.data import DataConfig
from serifu.data.build import build_character_dataset
from serifu.errors import SerifuError
from serifu.evaluation.heldout import adapter_heldout, check_characters
from serifu.evaluation.reference import cast_reference, dataset_pairs

from .conftest import ROOT

SHIPPED = ROOT / "packages/core/src/serifu/cast/akane/adapters/gemma-3-270m"


def _replies(ds: Path, split: str) -> set[str]:
    import datasets

    return set(datasets.load_from_disk(str(ds))[split]["reply"])


@pytest.fixture(scope="module")
def seed7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Akane's dialogue dataset split with seed 7 (not the default 0)."""
    out = tmp_path_factory.mktemp("seed7") / "ds"
    build_character_dataset("akane", out, config=DataConfig(seed=7))
    return out


def _adapter_for(ds: Path, folder: Path, *, record_options: bool) -> tuple[Path, dict[str, Any]]:
    """The shipped adapter, with a serifu.json saying it was trained on ``ds``."""
    shutil.copytree(SHIPPED, folder)
    info = json.loads((folder / "serifu.json").read_text(encoding="utf-8"))
    build = json.loads((ds / "build.json").read_text(encoding="utf-8"))
    info["dataset"].update(
        path=str(ds),
        build_sha256=hashlib.sha256((ds / "build.json").read_bytes()).hexdigest(),
        train_examples=build["splits"]["train"],
        validation_examples=build["splits"]["validation"],
    )
    if record_options:  # what serifu.json records since issue 14
        info["dataset"].update(options=build["options"], splits=build["splits"])
    else:  # an adapter from before: no options, no split sizes
        info["dataset"].pop("options", None)
        info["dataset"].pop("splits", None)
    (folder / "serifu.json").write_text(json.dumps(info), encoding="utf-8")
    return folder, info


def test_the_default_split_would_score_training_replies(seed7: Path) -> None:
    """Why the adapter's own split matters: the default split overlaps seed 7's training side."""
    default_test = {reply for _, reply in cast_reference("akane").heldout_pairs}
    assert default_test & _replies(seed7, "train")


def test_perplexity_uses_the_adapter_dataset_test_split(seed7: Path, tmp_path: Path) -> None:
    adapter, info = _adapter_for(seed7, tmp_path / "adapter", record_options=False)
    held = adapter_heldout(adapter, info, character="akane")
    assert held.data == seed7 and held.pairs == dataset_pairs(seed7)
    assert not {reply for _, reply in held.pairs} & _replies(seed7, "train")


def test_a_deleted_dataset_is_rebuilt_with_the_recorded_settings(
    seed7: Path, tmp_path: Path
) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(seed7, ds)
    adapter, info = _adapter_for(ds, tmp_path / "adapter", record_options=True)
    expected = dataset_pairs(ds)
    shutil.rmtree(ds)
    held = adapter_heldout(adapter, info, character="akane")
    assert held.data is None and held.pairs == expected and "recorded" in held.description


def test_a_fold_adapters_deleted_dataset_is_rebuilt_as_that_fold(tmp_path: Path) -> None:
    """An adapter trained on fold 2 of 5 (``--fold 2/5``) is scored on fold 2's held-out
    pairs when its dataset is gone: the fold is part of the recorded settings."""
    ds = tmp_path / "fold2"
    build_character_dataset("akane", ds, config=DataConfig(folds=5, fold=2))
    adapter, info = _adapter_for(ds, tmp_path / "adapter", record_options=True)
    expected = dataset_pairs(ds)
    train = _replies(ds, "train")
    shutil.rmtree(ds)
    held = adapter_heldout(adapter, info, character="akane")
    assert held.pairs == expected and not {reply for _, reply in held.pairs} & train
    assert sorted(held.pairs) != sorted(cast_reference("akane").heldout_pairs)


def test_an_unreproducible_split_asks_for_data(seed7: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(seed7, ds)
    adapter, info = _adapter_for(ds, tmp_path / "adapter", record_options=False)
    shutil.rmtree(ds)  # gone, and default settings give other split sizes than seed 7
    with pytest.raises(SerifuError, match="pass --data"):
        adapter_heldout(adapter, info, character="akane")


def test_shipped_adapter_split_is_reproduced_from_its_recorded_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped adapter records its data settings (augmented training data, default
    split): rebuilding them gives the cast's default held-out pairs. (Its recorded data
    folder is relative to where it was trained; from elsewhere it does not exist.)"""
    monkeypatch.chdir(tmp_path)
    info = json.loads((SHIPPED / "serifu.json").read_text(encoding="utf-8"))
    held = adapter_heldout(SHIPPED, info, character="akane")
    assert sorted(held.pairs) == sorted(cast_reference("akane").heldout_pairs)
    assert "recorded" in held.description


def test_mismatched_characters_are_refused() -> None:
    adapter = {"dataset": {"character_id": "akane", "character": "茜"}}
    with pytest.raises(SerifuError, match="character mismatch"):
        check_characters(character="himari", speaker=None, data=None, adapter=adapter)
    with pytest.raises(SerifuError, match="--data dataset is 'kaede'"):
        check_characters(
            character="akane", speaker=None, data={"character_id": "kaede"}, adapter=adapter
        )
    with pytest.raises(SerifuError, match="speaker mismatch"):
        check_characters(
            character=None, speaker="ロミオ", data={"character": "ヂュリ"}, adapter=None
        )
    check_characters(
        character="akane", speaker=None, data={"character_id": "akane"}, adapter=adapter
    )


def test_eval_cli_refuses_another_characters_data(
    seed7: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ev"
    args = ["eval", "--model", "tiny-gemma", "--character", "kaede", "--out", str(out)]
    assert main([*args, "--data", str(seed7)]) == 2
    assert "character mismatch" in capsys.readouterr().err
    assert main([*args, "--adapter", str(SHIPPED)]) == 2
    assert "character mismatch" in capsys.readouterr().err
    assert not out.exists()


def test_eval_cli_refuses_script_with_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = ROOT / "examples/scripts/cast_format.txt"
    args = ["eval", "--model", "tiny-gemma", "--character", "kaede", "--out", str(tmp_path / "ev")]
    assert main([*args, "--script", str(script), "--source", "script", "--speaker", "みお"]) == 2
    err = capsys.readouterr().err
    assert "not both" in err and "Traceback" not in err


def test_eval_cli_scores_the_adapter_dataset_test_split(
    seed7: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end on tiny-gemma: without --data, perplexity reads the adapter's own test split."""
    import torch
    from peft import LoraConfig, get_peft_model

    from serifu import plugins
    from serifu.inference import load_chatbot

    torch.manual_seed(0)
    adapter = tmp_path / "adapter"
    bot = load_chatbot(model="tiny-gemma", character="akane", device="cpu")
    targets = list(plugins.get_base_model("tiny-gemma").lora_targets)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=targets, init_lora_weights=False)
    get_peft_model(bot.model, lora).save_pretrained(str(adapter))
    build = json.loads((seed7 / "build.json").read_text(encoding="utf-8"))
    info = {
        "base_model": "tiny-gemma",
        "dataset": {
            "path": str(seed7),
            "build_sha256": hashlib.sha256((seed7 / "build.json").read_bytes()).hexdigest(),
            "format": "dialogue",
            "character": "茜",
            "character_id": "akane",
            "train_examples": build["splits"]["train"],
            "validation_examples": build["splits"]["validation"],
        },
    }
    (adapter / "serifu.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "ev"
    args = ["eval", "--model", "tiny-gemma", "--adapter", str(adapter), "--character", "akane"]
    opts = ["--out", str(out), "-e", "perplexity", "--limit", "2", "--max-new-tokens", "2"]
    assert main([*args, *opts, "--json"]) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["settings"]["data"] == str(seed7)
    assert report["reference"]["heldout_pairs"] == 2


def test_eval_cli_bad_paths_are_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = ROOT / "examples/scripts/cast_format.txt"
    args = ["eval", "--model", "tiny-gemma", "--character", "akane", "--out", str(tmp_path / "ev")]
    for extra, words in (
        (["--queries", str(script / "x")], "cannot read the query file"),
        (["--adapter", str(script)], "is a file, not an adapter folder"),
        (["--data", str(tmp_path / "none")], "no such dataset folder"),
    ):
        assert main([*args, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
