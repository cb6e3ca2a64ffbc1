"""`serifu data export --format messages`: chat JSONL that TRL/axolotl read, from a real dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.cli import main


@pytest.fixture(scope="module")
def akane_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serifu.config.data import DataConfig
    from serifu.data.build import build_character_dataset

    out = tmp_path_factory.mktemp("akane") / "data"
    build_character_dataset("akane", out, config=DataConfig(format="dialogue", context_lines=3))
    return out


def _rows(path: Path) -> list[list[dict[str, str]]]:
    return [json.loads(x)["messages"] for x in path.read_text(encoding="utf-8").splitlines()]


def test_every_row_is_a_chat_with_her_system_prompt(akane_data: Path, tmp_path: Path) -> None:
    import datasets

    from serifu import plugins
    from serifu.characters import system_prompt

    out = tmp_path / "msgs"
    assert main(["data", "export", str(akane_data), "--out", str(out)]) == 0
    splits = datasets.load_from_disk(str(akane_data))
    expected_system = system_prompt(plugins.get_character("akane").card())
    for name in splits:
        rows = _rows(out / f"{name}.jsonl")
        assert len(rows) == len(splits[name]) > 0
        for messages, row in zip(rows, splits[name], strict=True):
            roles = [m["role"] for m in messages]
            assert roles[0] == "system" and messages[0]["content"] == expected_system
            assert roles[1:] == ["user", "assistant"] * ((len(roles) - 1) // 2)
            assert messages[-2]["content"] == row["query"]
            assert messages[-1]["content"] == row["reply"]
    with_history = [r for r in _rows(out / "train.jsonl") if len(r) > 3]
    assert with_history  # context turns became earlier user/assistant messages


def test_without_system_prompt_and_as_json(
    akane_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "msgs"
    args = ["data", "export", str(akane_data), "--out", str(out), "--no-system-prompt", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "messages" and summary["system_prompt"] is False
    assert all(m[0]["role"] == "user" for m in _rows(out / "train.jsonl"))


def test_lines_dataset_and_unknown_format_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serifu.config.data import DataConfig
    from serifu.data.build import build_character_dataset

    lines = tmp_path / "lines"
    build_character_dataset("akane", lines, config=DataConfig(format="lines"))
    assert main(["data", "export", str(lines), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "needs a dialogue dataset" in err and str(lines) in err
    assert not (tmp_path / "o").exists()
    assert main(["data", "export", str(lines), "--out", str(tmp_path / "o"), "--format", "x"]) == 2
    assert "unknown export format 'x'" in capsys.readouterr().err
