"""The report's preset, exactly, and the optional rules with their counts."""

from __future__ import annotations

from serifu.data.cleaning import Cleaner

MARKED = [
    "はい、参りましょう",
    "gaiji髙gaiji橋さん、 おはよう@",
    "　全角　スペース　も\t消える ",
    "//voice_031 ここは落とす",
    "台詞の途中に//がある行も落とす",
    "@@@",
    "普通の行",
]
EXPECTED = [
    "はい、参りましょう\n",
    "髙橋さん、おはよう\n",
    "全角スペースも消える\n",
    "\n",
    "普通の行\n",
]


def test_report_preset_turns_marked_lines_into_exactly_the_expected_lines() -> None:
    result = Cleaner.build("report").run(MARKED)
    assert result.texts == EXPECTED
    assert result.kept == [0, 1, 2, 5, 6]
    rules = result.rules
    assert list(rules) == [
        "remove_gaiji",
        "remove_at",
        "remove_whitespace",
        "drop_double_slash",
        "append_newline",
    ]
    assert (rules["remove_gaiji"]["changed"], rules["remove_at"]["changed"]) == (1, 2)
    assert rules["remove_whitespace"]["changed"] == 3  # the dropped "//voice_031 …" too
    assert rules["drop_double_slash"]["dropped"] == 2
    assert rules["append_newline"]["changed"] == 5
    example = rules["remove_gaiji"]["examples"][0]
    assert example == {"before": MARKED[1], "after": "髙橋さん、 おはよう@"}


def test_preset_none_keeps_text_and_dialogue_mode_skips_the_newline() -> None:
    assert Cleaner.build("none").run(MARKED).texts == MARKED
    assert Cleaner.build("report").clean_one("は い@", final=False) == "はい"


def test_optional_rules_count_and_drop() -> None:
    cleaner = Cleaner.build(
        "report", nfkc=True, drop_directions=True, min_chars=3, max_chars=8, dedupe=True
    )
    texts = [
        "ＡＢＣです",
        "（笑）ABCです",
        "短",
        "とても長い長い長い台詞です",
        "ふつう（小声で）だよ",
    ]
    result = cleaner.run(texts)
    assert result.texts == ["ABCです\n", "ふつうだよ\n"]
    assert result.rules["nfkc"]["changed"] == 3  # full-width letters and （）
    assert result.rules["drop_directions"]["changed"] == 2
    assert result.rules["dedupe"]["dropped"] == 1
    assert result.rules["min_chars"]["dropped"] == 1
    assert result.rules["max_chars"]["dropped"] == 1
