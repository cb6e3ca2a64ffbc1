"""The aozora-play reader on every play of the shared corpus, and Aozora markup."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from serifu.data.aozora_markup import resolve_gaiji, strip_markup
from serifu.data.io import read_utterances
from serifu.kinds import Utterance

from .conftest import PLAYS, ROMEO

MARKUP = re.compile(r"[《》｜]|［＃|※［")


def test_markup_ruby_notes_and_gaiji() -> None:
    line = "ベン※［＃濁点付き片仮名ヲ、1-7-85］　｜二名族《めいぞく》が※［＃「日＋向」、第3水準1-85-25］［＃「x」はママ］おや／＼"
    assert strip_markup(line) == "ベンヺ　二名族が晌おや〱"
    assert strip_markup(line, gaiji="drop", odoriji=False) == "ベン　二名族がおや／＼"
    assert strip_markup(line, gaiji="placeholder") == "ベン〓　二名族が〓おや〱"
    assert resolve_gaiji("二の字点、1-2-22") == "〻"
    assert resolve_gaiji("「言＋墟のつくり」、第4水準2-88-74") is not None
    assert resolve_gaiji("説明だけ") is None


def test_space_style_labels_continuations_directions_and_cast_list(tmp_path: Path) -> None:
    text = (
        "題\n作者\n\n-------------------------------------------------------\n凡例\n"
        "-------------------------------------------------------\n"
        "［＃ここから２字下げ］\n人物\n夜叉王の娘　かつら\n時　　夏の夕\n"
        "［＃ここから改行天付き、折り返して１字下げ］\n"
        "かつら　（砧の手をやめる）お父様《ととさま》、\n"
        "［＃ここから５字下げ］\n（間）\n"
        "［＃ここから１字下げ］\nもう日が暮れます。\n"
        "［＃ここから改行天付き、折り返して１字下げ］\n"
        "夜叉王　　うむ。\n夜叉王の声　まだじゃ。\n"
        "母と兄　うーむ。\n"
        "［＃ここから５字下げ］\n二人去る。\n\n底本：「全集」\n"
    )
    f = tmp_path / "play.txt"
    f.write_text(text, encoding="utf-8")
    utts = read_utterances([f], "aozora-play", {"aliases": {"かつら": "桂"}})
    assert [(u.speaker, u.text) for u in utts] == [
        ("桂", "お父様、もう日が暮れます。"),
        ("夜叉王", "うむ。"),
        ("夜叉王", "まだじゃ。"),
        ("母と兄", "うーむ。"),
    ]


def _labels_at_start(utts: list[Utterance]) -> list[Utterance]:
    labels = {u.speaker for u in utts}
    return [
        u
        for u in utts
        if any(u.text.startswith(lab + "　") or u.text.startswith(lab + "「") for lab in labels)
    ]


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "options", "top"), PLAYS, ids=[p[0].split("_")[-1] for p in PLAYS]
)
def test_every_play_finds_the_manifest_top_speakers(
    play: Callable[[str], Path], name: str, options: dict[str, object], top: list[tuple[str, int]]
) -> None:
    utts = read_utterances([play(name)], "aozora-play", options)
    counts = Counter(u.speaker for u in utts)
    found = [s for s, _ in counts.most_common(len(top))]
    assert set(found) == {s for s, _ in top}, counts.most_common(6)
    for speaker, expected in top:
        assert abs(counts[speaker] - expected) <= 0.1 * expected, (
            speaker,
            counts[speaker],
            expected,
        )
    assert not [u for u in utts if MARKUP.search(u.text)]
    assert not _labels_at_start(utts)
    assert not [u for u in utts if "（" in u.text or "）" in u.text]  # directions removed


@pytest.mark.corpus
def test_shift_jis_and_euc_jp_copies_build_the_same_dataset(
    play: Callable[[str], Path], tmp_path: Path
) -> None:
    from serifu.config.data import DataConfig
    from serifu.data.build import build_dataset

    original = play(ROMEO)
    text = original.read_text(encoding="utf-8")
    sjis = tmp_path / "romeo-sjis.txt"
    sjis.write_bytes(text.encode("cp932"))  # every character of this play encodes
    config = DataConfig(format="dialogue", jsonl=True)
    a = build_dataset(
        [original], tmp_path / "utf8", source="aozora-play", speaker="ロミオ", config=config
    )
    b = build_dataset(
        [sjis], tmp_path / "sjis", source="aozora-play", speaker="ロミオ", config=config
    )
    assert b.info["sources"][0]["encoding"] == "cp932"
    assert a.splits == b.splits and a.splits["train"] > 100
    for split in ("train", "validation", "test"):
        assert (tmp_path / "utf8" / f"{split}.jsonl").read_text(encoding="utf-8").replace(
            "000264_42773_romeo-to-juliet.txt", "F"
        ) == (tmp_path / "sjis" / f"{split}.jsonl").read_text(encoding="utf-8").replace(
            "romeo-sjis.txt", "F"
        )
    # EUC-JP too, on a play whose characters all exist in EUC-JP
    shuzenji = play(PLAYS[-1][0])
    euc = tmp_path / "shuzenji-euc.txt"
    euc.write_bytes(shuzenji.read_text(encoding="utf-8").encode("euc-jp"))
    pick = lambda p: [(u.speaker, u.text, u.scene) for u in read_utterances([p], "aozora-play")]  # noqa: E731
    assert pick(euc) == pick(shuzenji)
