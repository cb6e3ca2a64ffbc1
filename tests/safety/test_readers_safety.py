"""Readers: bounded lines, no silent misparses, clear errors instead of tracebacks (issue 14)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from serifu.cli import main
from serifu.config.data import DataConfig
from serifu.data.build import build_dataset
from serifu.data.io import get_source, read_file
from serifu.data.tagging import TAGGER_MAX_CHARS, chunks
from serifu.errors import SerifuError

from .conftest import cli


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_a_10_mb_line_is_rejected_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("はい。\nいいえ。\n" + "あ" * 10_000_000 + "\n", encoding="utf-8")
    out = tmp_path / "ds"
    assert main(["data", "build", str(path), "--format", "lines", "--out", str(out)]) == 2
    err = _err(capsys)
    assert f"{path}, line 3" in err and "10,000,000 characters" in err
    assert "--max-line-chars" in err and not out.exists()
    assert main(["data", "speakers", str(path), "--max-line-chars", "10000001"]) == 0


def test_a_spoken_line_joined_over_many_rows_is_bounded_too(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    body = "\n".join("あ" * 100 for _ in range(300))  # short rows, one 30k-char field
    path.write_text(f'speaker,text\nA,はい\nB,"{body}"\n', encoding="utf-8")
    with pytest.raises(SerifuError, match=r"line 3: a spoken line is 30,299 characters"):
        read_file(path, get_source("table"))
    assert len(read_file(path, get_source("table"), max_line_chars=40_000)[0]) == 2


def test_data_stats_survives_a_line_that_crashes_the_tagger(tmp_path: Path) -> None:
    """fugashi segfaults on 750k characters in one call (exit 139); stats hands it bounded pieces."""
    path = tmp_path / "long.txt"
    path.write_text("はい。\n" + "あいうえお" * 150_000 + "\nいいえ。\n", encoding="utf-8")
    ds = tmp_path / "ds"
    config = DataConfig(format="lines")
    build_dataset([path], ds, source="lines", config=config, max_line_chars=800_000)
    done = cli("data", "stats", ds, "--json")
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert json.loads(done.stdout)["length"]["max"] == 750_000


def test_tagger_chunks_are_bounded_and_lossless() -> None:
    text = ("今日は晴れ。" * 3000) + ("あ" * 9000) + "終わり"
    pieces = list(chunks(text))
    assert "".join(pieces) == text
    assert all(0 < len(p) <= TAGGER_MAX_CHARS for p in pieces)
    assert pieces[0].endswith("。")  # cut at a sentence end where there is one


def test_csv_with_an_unterminated_quote_is_an_error_not_swallowed_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.csv"
    path.write_text('speaker,text\nA,おはよう\nB,"こんにちは\nA,元気？\nB,うん\n', encoding="utf-8")
    assert main(["data", "speakers", str(path), "--source", "table"]) == 2
    err = _err(capsys)
    assert f"{path}, line 3" in err and "never closed" in err
    path.write_text('speaker,text\nA,"ok" tail\n', encoding="utf-8")
    with pytest.raises(SerifuError, match="line 2: not valid CSV"):
        read_file(path, get_source("table"))
    path.write_text(
        'speaker,text\nA,"二行の\n台詞"\nB,"引用""符"\nC,途中の"引用"\n', encoding="utf-8"
    )
    rows = read_file(path, get_source("table"))[0]  # valid quoting still reads
    assert [u.text for u in rows] == ["二行の\n台詞", '引用"符', '途中の"引用"']


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_reads_with_encoding(
    tmp_path: Path, codec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes("おはよう\nこんにちは\n".encode(codec))
    assert main(["data", "speakers", str(path), "--encoding", codec, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["speakers"] == [{"name": "", "lines": 2}]
    path.write_bytes(codecs.BOM_UTF16_LE + "おはよう\n".encode("utf-16-le"))
    texts = [u.text for u in read_file(path, get_source("lines"), encoding="utf-16-le")[0]]
    assert texts == ["おはよう"]  # the BOM is not part of the first line
    path.write_bytes("おはよう\n".encode(codec))
    assert main(["data", "speakers", str(path)]) == 2
    assert "--encoding utf-16-le" in _err(capsys)


def test_ordinary_mistakes_give_one_message(
    tmp_path: Path, script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = tmp_path / "ds"
    assert main(["data", "build", "--character", "akane", "--out", str(ds)]) == 0
    capsys.readouterr()
    cases: list[tuple[list[str], str]] = [
        (["data", "speakers", str(script / "x.txt")], "a part of the path is a file"),
        (["data", "stats", str(script)], "is a file, not a dataset folder"),
        (["data", "stats", str(tmp_path / "nope")], "no such dataset folder"),
        (["data", "speakers", "/dev/zero"], "not a regular file"),  # used to read forever
    ]
    build = ["data", "build", str(script), "--source", "script", "--speaker", "みお"]
    build += ["--out", str(tmp_path / "o")]
    cases += [
        ([*build, "--config", str(script / "x.toml")], "cannot read the config"),
        ([*build, "--config", "/dev/zero"], "must be a TOML file"),  # used to exhaust memory
    ]
    for args, words in cases:
        assert main(args) == 2, args
        assert words in _err(capsys)
    build_json = ds / "build.json"
    for damaged, words in (
        (b'{"format": "dia', "not valid JSON"),
        (b"[1, 2]", "damaged"),
        (b"\xff\xfe", "not valid JSON"),
    ):
        build_json.write_bytes(damaged)
        assert main(["data", "stats", str(ds)]) == 2
        assert words in _err(capsys)


def test_a_truncated_dataset_file_is_a_clear_error(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    assert cli("data", "build", "--character", "akane", "--out", ds).returncode == 0
    arrow = next((ds / "train").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    done = cli("data", "stats", ds)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "damaged or incomplete" in done.stderr and "Traceback" not in done.stderr
