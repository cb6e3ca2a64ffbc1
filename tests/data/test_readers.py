"""The lines, table and script readers, the example scripts, and reader-option errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu import plugins
from serifu.data.io import read_utterances
from serifu.errors import SerifuError
from serifu.kinds import DataSource

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "scripts"


def test_builtin_sources_are_registered_and_satisfy_the_protocol() -> None:
    sources = plugins.data_sources()
    for source_id in ("lines", "table", "aozora-play", "script"):
        assert isinstance(sources[source_id].item, DataSource)
    assert not [f for f in plugins.failed() if "data_sources" in f.error]


def test_unknown_source_lists_the_known_ones(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x\n", encoding="utf-8")
    with pytest.raises(
        SerifuError, match=r"unknown data source 'nope'; known: .*aozora-play.*script"
    ):
        read_utterances([f], "nope")


def test_lines_reader_keeps_rows_as_written(tmp_path: Path) -> None:
    f = tmp_path / "lines.txt"
    f.write_text("はい、 参りましょう@\n\n  次の行\n", encoding="utf-8")
    utts = read_utterances([f], "lines")
    assert [(u.text, u.line, u.speaker) for u in utts] == [
        ("はい、 参りましょう@", 1, ""),
        ("  次の行", 3, ""),
    ]
    scened = read_utterances([f], "lines", {"blank_line_scenes": True, "speaker": "茜"})
    assert [(u.scene, u.speaker) for u in scened] == [(0, "茜"), (1, "茜")]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_table_formats(tmp_path: Path, suffix: str) -> None:
    rows = [
        ("s1", "茜", "おはよう、元気？"),
        ("s1", "主人公", "元気だよ"),
        ("s2", "茜", "ほな, また"),
    ]
    f = tmp_path / f"t{suffix}"
    if suffix == ".jsonl":
        f.write_text(
            "".join(
                json.dumps({"scene": s, "who": w, "line_text": t}, ensure_ascii=False) + "\n"
                for s, w, t in rows
            ),
            encoding="utf-8",
        )
    else:
        sep = "\t" if suffix == ".tsv" else ","
        body = "".join(f'{s}{sep}{w}{sep}"{t}"\n' for s, w, t in rows)
        f.write_text(f"scene{sep}who{sep}line_text\n" + body, encoding="utf-8")
    utts = read_utterances([f], "table", {"speaker_column": "who", "text_column": "line_text"})
    assert [(u.speaker, u.text, u.scene) for u in utts] == [
        ("茜", "おはよう、元気？", 1),
        ("主人公", "元気だよ", 1),
        ("茜", "ほな, また", 2),
    ]


def test_table_missing_columns_name_file_line_and_columns(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("name,line\n茜,やあ\n", encoding="utf-8")
    with pytest.raises(
        SerifuError,
        match=r"t\.csv, line 2: missing column\(s\) 'speaker', 'text'; the row has: 'name', 'line'",
    ):
        read_utterances([f], "table")


def test_unknown_reader_option_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("【茜】「やあ」\n", encoding="utf-8")
    with pytest.raises(
        SerifuError, match=r"invalid options for data source 'script': tag_style: unknown option"
    ):
        read_utterances([f], "script", {"tag_style": "colon"})


def test_script_reader_default_reads_the_cast_format() -> None:
    utts = read_utterances([EXAMPLES / "cast_format.txt"], "script")
    assert [u.speaker for u in utts] == [
        "主人公",
        "みお",
        "主人公",
        "みお",
        "みお",
        "みお",
        "主人公",
        "みお",
    ]
    assert utts[4].text == "……ありがとう。『助かった』って、ちゃんと言えた"
    assert {u.scene for u in utts} == {1, 2}
    assert all("教室" not in u.text for u in utts)  # narration is not speech


def test_script_reader_other_styles_choices_and_hash_blocks() -> None:
    options = {
        "tag_styles": ["bracket", "colon", "hash"],
        "scene_pattern": r"^\*",
        "choices": "protagonist",
    }
    utts = read_utterances([EXAMPLES / "mixed_styles.txt"], "script", options)
    assert [(u.speaker, u.text, u.scene) for u in utts] == [
        ("みお", "風が気持ちいいね", 1),
        ("主人公", "ああ、昼寝したくなる", 1),
        ("主人公", "一緒にお弁当を食べよう", 1),
        ("主人公", "先に教室に戻る", 1),
        ("みお", "えっ、いいの？じゃあ卵焼き、半分あげる", 1),
        ("みお", "しーっ。ここでは小さな声でね", 2),
        ("主人公", "ごめん", 2),
    ]
    skipped = read_utterances(
        [EXAMPLES / "mixed_styles.txt"], "script", {**options, "choices": "skip"}
    )
    assert len(skipped) == 5


def test_script_reader_reports_a_malformed_tag(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("[scene] a\n【茜】「やあ」\n【茜「閉じてない」\n", encoding="utf-8")
    with pytest.raises(SerifuError, match=r"bad\.txt, line 3: malformed speaker tag"):
        read_utterances([f], "script")


def test_a_file_without_speech_for_the_source_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "narration.txt"
    f.write_text("ただの地の文。\n", encoding="utf-8")
    with pytest.raises(SerifuError, match=r"no spoken lines found by data source 'script'"):
        read_utterances([f], "script")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # an unquoted comma in her line: the rest of the line would be dropped silently
        ("茜,ほな, またな\n", r"t\.csv, line 3: this row has 3 fields but the header has 2"),
        # a row cut short before the text column: it was skipped silently
        ("茜\n", r"t\.csv, line 3: this row ends before column\(s\) 'text'"),
    ],
)
def test_table_ragged_rows_are_errors_naming_the_line(
    tmp_path: Path, body: str, message: str
) -> None:
    f = tmp_path / "t.csv"
    f.write_text("speaker,text\n主人公,やあ\n" + body, encoding="utf-8")
    with pytest.raises(SerifuError, match=message):
        read_utterances([f], "table")


def test_table_rows_may_leave_out_trailing_optional_columns(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("speaker,text,scene\n茜,やあ,1\n主人公,よう\n", encoding="utf-8")
    utts = read_utterances([f], "table")
    assert [(u.speaker, u.text, u.scene) for u in utts] == [
        ("茜", "やあ", 1),
        ("主人公", "よう", 0),
    ]
