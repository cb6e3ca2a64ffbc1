"""``serifu data`` and ``serifu characters list``: JSON shapes and the error contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from serifu.cli import main

from .conftest import ROMEO

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scripts" / "cast_format.txt"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_speakers_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "speakers", str(EXAMPLE), "--source", "script", "--json")
    assert code == 0
    assert json.loads(out) == {
        "speakers": [{"name": "みお", "lines": 5}, {"name": "主人公", "lines": 3}]
    }


@pytest.mark.corpus
def test_build_and_stats_on_romeo(
    capsys: pytest.CaptureFixture[str], play: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "romeo"
    code, stdout, _ = run(
        capsys, "data", "build", str(play(ROMEO)), "--source", "aozora-play", "--speaker", "ロミオ",
        "--format", "dialogue", "--out", str(out), "--preset", "report", "--json",
    )  # fmt: skip
    assert code == 0
    summary = json.loads(stdout)
    assert summary["out"] == str(out) and set(summary["splits"]) == {"train", "validation", "test"}
    assert sum(summary["splits"].values()) > 140 and "remove_whitespace" in summary["rules"]
    code, stdout, _ = run(capsys, "data", "stats", str(out), "--json")
    stats = json.loads(stdout)
    assert code == 0 and stats["examples"] == sum(summary["splits"].values())
    assert stats["first_person"].get("予", 0) > 10 and stats["endings"][0]["count"] > 10
    code, text, _ = run(capsys, "data", "stats", str(out))
    assert code == 0 and "█" in text and "first-person pronouns" in text


def test_build_character_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from serifu import plugins

    assert "akane" in plugins.characters(), "akane is missing from the sample cast"
    code, stdout, _ = run(
        capsys,
        "data",
        "build",
        "--character",
        "akane",
        "--format",
        "lines",
        "--out",
        str(tmp_path / "a"),
        "--json",
    )
    assert code == 0 and json.loads(stdout)["splits"]["train"] > 200
    info = json.loads((tmp_path / "a" / "build.json").read_text(encoding="utf-8"))
    assert info["character_id"] == "akane" and info["format"] == "lines"


def test_characters_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, "characters", "list", "--json")
    rows = json.loads(stdout)
    assert code == 0 and rows
    assert all(set(r) == {"id", "name", "lines"} and r["lines"] >= 300 for r in rows)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--source", "script", "--speaker", "玲"],
            "speaker '玲' has no lines; speakers found: みお (5), 主人公 (3)",
        ),
        (["--source", "nope", "--speaker", "x"], "unknown data source 'nope'; known:"),
        (["--source", "script"], "name the character with --speaker"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_no_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code, _, err = run(capsys, "data", "build", str(EXAMPLE), "--out", str(out), *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_undecodable_and_empty_files_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes("【茜】「".encode() + b"\x80\x80\xff")
    code, _, err = run(capsys, "data", "speakers", str(bad), "--source", "script")
    assert code == 2 and "byte offset" in err and "bad.txt" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    code, _, err = run(capsys, "data", "speakers", str(empty), "--source", "script")
    assert code == 2 and "empty" in err


def test_fold_option_builds_a_fold_and_rejects_a_bad_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = (
        "data",
        "build",
        str(EXAMPLE),
        "--source",
        "script",
        "--speaker",
        "みお",
        "--format",
        "lines",
    )
    code, out, _ = run(capsys, *args, "--out", str(tmp_path / "f1"), "--fold", "1/2", "--json")
    assert code == 0
    info = json.loads((tmp_path / "f1" / "build.json").read_text(encoding="utf-8"))
    assert (info["options"]["fold"], info["options"]["folds"]) == (1, 2)
    code, _, err = run(capsys, *args, "--out", str(tmp_path / "bad"), "--fold", "2/2")
    assert code != 0 and "--fold '2/2'" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
