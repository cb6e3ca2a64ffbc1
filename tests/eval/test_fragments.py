"""The fragments evaluator: broken pieces of sentences in clean-looking replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu import plugins
from serifu.evaluation.fragments import fragment_rate, fragment_report, fragments, sentences
from serifu.evaluation.run import Reference

from .conftest import make_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        # seen in the base Gemma 3 270M's and lightly tuned play speakers' replies
        ("テスト前なのに、まだ何も勉強してないんだ。にあった", "starts-with-particle"),
        ("屋上って風が気持ちいいな。よく来るの？で購入者", "starts-with-particle"),
        ("教室に一人で残って、どうしたの？の状態", "starts-with-particle"),
        (
            "テスト結果が何だったのか、意味をわかった方がいい。をしたかった。",
            "starts-with-particle",
        ),
        ("ごめん、待たせてもらいなさい、電車は遅れちゃって。なおょうり", "impossible-kana"),
        ("夕焼けがきれいだね。事に", "dangling-tail"),
        ("昨日から雨が降ってたけど、風邪ひいたの？経営", "dangling-tail"),
        ("部活、今日もあるの？ちなみに", "dangling-tail"),
        ("ねえ、ちょっとだけ目をつぶってて。命数モデル", "dangling-tail"),
        ("うん。媾合したくないよ。媾合したくないよ。媾合したくないよ。媾合したくないよ。", "loop"),
        ("ここらへん。媾。媾。媾。媾。媾。", "loop"),
    ],
)
def test_fragments_found(reply: str, kind: str) -> None:
    assert kind in {f.kind for f in fragments(reply)}


@pytest.mark.parametrize(
    "reply",
    [
        "おはよう！ほんまええ天気やな！",
        "でも、そんなに食べたくないわね。",
        "で、どうしたの？",  # colloquial で set off by a comma
        "が、それは違う。",
        "うちは軽音部や。ベースやってんねん",
        "……ありがとう。……私は、お茶を水筒に入れてきた。……ほうじ茶",  # an afterthought
        "好きな食べ物？わらび餅",  # her answer to the question she repeats
        "……開けても、いい？……あ、……しおり。……押し花の、しおり",
        "じゃあ、明日ね。またね",
        "8月3日！",
        "あははははははははは。",  # laughter
        "……………………そう。",  # a pause
        "さらば、さらば！",
        "",
    ],
)
def test_real_speech_is_no_fragment(reply: str) -> None:
    assert fragments(reply) == []


def test_a_cut_off_reply_has_no_dangling_tail() -> None:
    """At the token limit the last sentence is unfinished by force, not by the model."""
    assert fragments("夕焼けがきれいだね。事に", stopped=False) == []
    assert fragments("夕焼けがきれいだね。にあった", stopped=False) != []


def test_sentences_keep_closing_marks() -> None:
    assert sentences("「行こう。」そうね！……うん") == ["「行こう。」", "そうね！……", "うん"]


def test_report_counts_kinds_and_the_real_lines_rate() -> None:
    texts = ["夕焼けがきれいだね。事に", "たこ焼きや！", "よく来るの？で購入者"]
    result = fragment_report(texts, [True, True, True], reference=["ほんまや！", "せやな。"])
    assert result["fragment_rate"] == round(2 / 3, 4)
    assert result["by_kind"] == {
        "starts-with-particle": round(1 / 3, 4),
        "impossible-kana": 0.0,
        "dangling-tail": round(1 / 3, 4),
        "loop": 0.0,
    }
    assert result["reference_rate"] == 0.0 and result["reference_n"] == 2
    assert [f["index"] for f in result["fragments"]] == [0, 2]  # type: ignore[index]
    assert fragment_report([], [])["fragment_rate"] == 0.0


def test_evaluator_gives_her_real_lines_rate(cast_ref: Reference) -> None:
    run = make_run(["夕焼けがきれいだね。事に", "うん、行こう！"], cast_ref)
    summary = plugins.get_evaluator("fragments").evaluate(run)["summary"]
    assert summary["fragment_rate"] == 0.5
    assert summary["reference_rate"] < 0.01  # kaede's own lines


def test_the_cast_s_real_lines_are_almost_never_fragments(cast_ref: Reference) -> None:
    """Every heroine's own lines: the rules flag what people do not write."""
    by_label: dict[str, list[str]] = {}
    for line in cast_ref.lines:
        by_label.setdefault(line.label, []).append(line.text)
    assert len(by_label) == 8
    for label, lines in by_label.items():
        assert fragment_rate(lines) < 0.01, label


def test_plays_real_lines_are_almost_never_fragments(aozora_dir: Path) -> None:
    """Every line of every shared Aozora play (period spelling, dialect, stage drill)."""
    from serifu.data.io import read_utterances

    plays = sorted(aozora_dir.glob("*.txt"))
    assert plays
    everything = []
    for play in plays:
        lines = [u.text for u in read_utterances([play], "aozora-play")]
        everything += lines
        assert fragment_rate(lines) < 0.05, play.name  # 饑餓陣営's drill: 「一、二、一、二…」
    assert fragment_rate(everything) < 0.01


def test_the_shipped_base_writes_fragments_and_her_adapter_does_not() -> None:
    """docs/results: the base Gemma 3 270M without her card vs akane's adapter."""
    rates = {}
    for run in ("base", "tuned"):
        path = ROOT / "docs" / "results" / "akane" / run / "generations.jsonl"
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        rows = [r for r in rows if r["condition"] == "system-prompt-off"]
        rates[run] = fragment_rate([r["text"] for r in rows], [r["stopped"] for r in rows])
    assert rates["base"] > 0.2 and rates["tuned"] < 0.02


def test_without_the_analyser_only_tag_free_rules_run() -> None:
    """The reranker on a machine without fugashi (the GPU bench image) keeps to these."""
    from serifu.evaluation.fragments import can_tag

    assert can_tag()  # here the analyser is installed (a core dependency)
    assert fragments("夕焼けがきれいだね。事に", tags=False) == []
    assert [f.kind for f in fragments("なおょうり", tags=False)] == ["impossible-kana"]
    looped = "ここらへん。媾。媾。媾。媾。媾。"
    assert [f.kind for f in fragments(looped, tags=False)] == ["loop"]
