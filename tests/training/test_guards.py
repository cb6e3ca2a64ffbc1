"""Bad --out, bad settings and bad data fail with one clear paragraph, before any work,
and nothing the user had is lost."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from serifu.cli import main
from serifu.config.train import LoraConfigModel, TrainConfig
from serifu.errors import SerifuError
from serifu.training import train
from serifu.training.callbacks import Callback
from serifu.training.checkpoint import work_dir
from serifu.training.step import step_plan

CFG = TrainConfig(max_steps=2, batch_size=4, save_steps=0, eval=False, report_to="none")


def _train_cli(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "tiny-llama", "--data", str(data), "--out", str(out), *extra]


def test_out_that_is_a_file_fails_before_loading(
    dialogue_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "adapter.txt"
    target.write_text("mine", encoding="utf-8")
    assert main(_train_cli(dialogue_dir, target, "--max-steps", "1")) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "Traceback" not in err
    assert target.read_text(encoding="utf-8") == "mine"
    assert not work_dir(target).exists()  # failed before creating anything


def test_out_under_a_file_fails_before_loading(dialogue_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine", encoding="utf-8")
    with pytest.raises(SerifuError, match="is a file"):
        train("tiny-llama", dialogue_dir, blocker / "adapter", CFG, progress=False)
    assert blocker.read_text(encoding="utf-8") == "mine"


def test_out_equal_to_the_dataset_is_refused_even_with_force(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "ds"
    shutil.copytree(dialogue_dir, data)
    before = sorted(p.name for p in data.iterdir())
    for force in (False, True):
        with pytest.raises(SerifuError, match="input"):
            train("tiny-llama", data, data, CFG, progress=False, force=force)
        with pytest.raises(SerifuError, match="input"):
            train("tiny-llama", data, data / "adapter", CFG, progress=False, force=force)
    assert sorted(p.name for p in data.iterdir()) == before


def test_out_that_serifu_did_not_write_needs_force(dialogue_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(SerifuError, match="not written by Serifu.*--force"):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False)
    assert (out / "holiday.jpg").is_file()
    train("tiny-llama", dialogue_dir, out, CFG, progress=False, force=True)
    assert (out / "adapter_model.safetensors").is_file() and not (out / "holiday.jpg").exists()
    # an adapter Serifu wrote is replaced without --force
    train("tiny-llama", dialogue_dir, out, CFG, progress=False)
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_in_a_folder_without_write_permission(dialogue_dir: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SerifuError, match="permission denied"):
            train("tiny-llama", dialogue_dir, locked / "adapter", CFG, progress=False)
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs")
def test_out_where_nothing_may_be_written_fails_before_loading(
    dialogue_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = Path("/sys/serifu-test/adapter")  # sysfs refuses new folders, even to root
    assert main(_train_cli(dialogue_dir, out, "--max-steps", "1")) == 2
    err = capsys.readouterr().err
    assert "preparing the run's work folder" in err and "Traceback" not in err
    assert "Loading weights" not in err  # before the model loads


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-steps", "0"], "train.max_steps"),
        (["--max-steps", "-1"], "train.max_steps"),
        (["--epochs", "-1"], "train.epochs"),
        (["--epochs", "0"], "train.epochs"),
        (["--set", "train.learning_rate=inf"], "finite"),
        (["--set", "train.learning_rate=0"], "train.learning_rate"),
        (["--set", "train.gradient_accumulation_steps=0"], "gradient_accumulation_steps"),
    ],
)
def test_nonsense_settings_are_refused(
    dialogue_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    expected: str,
) -> None:
    out = tmp_path / "adapter"
    assert main(_train_cli(dialogue_dir, out, *flags)) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not out.exists() and not work_dir(out).exists()


def test_unknown_lora_target_names_it_and_the_model_layers(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    cfg = CFG.model_copy(update={"lora": LoraConfigModel(targets=["q_proj", "qkv_typo"])})
    with pytest.raises(SerifuError) as err:
        train("tiny-llama", dialogue_dir, tmp_path / "a", cfg, progress=False)
    text = str(err.value)
    assert "'qkv_typo'" in text and "'q_proj'" not in text.split("for")[0]
    assert "q_proj" in text and "v_proj" in text and "tiny-llama" in text  # the real names
    assert not (tmp_path / "a").exists()


class Diverge(Callback):
    """After step 1 one LoRA weight becomes infinite, as in a run that diverged."""

    def on_step_end(self, trainer: Any, step: int, loss: float) -> None:
        if step == 1:
            import torch

            lora_b = next(p for n, p in trainer.model.named_parameters() if "lora_B" in n)
            with torch.no_grad():
                lora_b.fill_(float("inf"))


def test_non_finite_loss_stops_with_an_error_and_writes_no_adapter(
    dialogue_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = CFG.model_copy(update={"max_steps": 4, "save_steps": 1})
    with pytest.raises(SerifuError, match=r"loss became nan at step 2.*learning_rate"):
        train(
            "tiny-llama", dialogue_dir, tmp_path / "a", cfg, progress=False, callbacks=[Diverge()]
        )
    assert not (tmp_path / "a").exists()


def test_no_example_left_after_encoding_is_an_error_not_a_hang(
    tmp_path: Path, dataset_writer: Callable[..., Path]
) -> None:
    data = dataset_writer(tmp_path / "empty", "lines", [{"text": ""}] * 9, character_id=None)
    with pytest.raises(SerifuError, match="no training example is left"):
        train("tiny-llama", data, tmp_path / "a", CFG, progress=False)
    with pytest.raises(SerifuError, match="no training example is left"):
        step_plan([], CFG)


def test_missing_tensorboard_is_not_a_late_surprise(dialogue_dir: Path, tmp_path: Path) -> None:
    # report_to="tensorboard" is the default; the package is a dependency
    from serifu.training.preflight import check_outputs

    check_outputs(tmp_path / "a", dialogue_dir, resume=False, force=False, report_to="tensorboard")
    assert work_dir(tmp_path / "a").is_dir()


def test_damaged_dataset_build_json(tmp_path: Path, dialogue_dir: Path) -> None:
    data = tmp_path / "ds"
    shutil.copytree(dialogue_dir, data)
    (data / "build.json").write_text('{"format": "dialogue", ', encoding="utf-8")
    with pytest.raises(SerifuError, match=r"build\.json is not valid JSON"):
        train("tiny-llama", data, tmp_path / "a", CFG, progress=False)
    assert json.loads((dialogue_dir / "build.json").read_text(encoding="utf-8"))
