"""The echo evaluator: replies that repeat the player's line back instead of answering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.evaluation.echo import echo_report, echoes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("line", "reply", "echo"),
    [
        # parrots seen in lightly tuned play speakers' replies (bench/play_vocabulary.py)
        (
            "宿題やってきた？ちょっと見せてほしいんだけど。",
            "宿題やってきた！ちょっと見せてほしいんだけど。場所に",
            True,
        ),
        ("おはよう。今日もいい天気だね。", "おはようございます。今日もいい天気だね。", True),
        ("桜、満開だね。お花見日和だ。", "桜、満開だね。お花見日和だ。いにゃん", True),
        # answers that reuse some of the line's words are no echo
        ("好きな食べ物って何？", "好きな食べ物はたこ焼きや！", False),
        ("おはよう。今日もいい天気だね。", "おはよう！ほんまええ天気やな！", False),
        ("何歳？", "何歳やと思う？", False),  # too short to tell
        ("誕生日っていつ？", "8月3日やで！", False),
    ],
)
def test_echoes(line: str, reply: str, echo: bool) -> None:
    assert echoes(line, reply) is echo


def test_report_counts_and_lists_the_echoes() -> None:
    lines = ["おはよう。今日もいい天気だね。", "好きな食べ物って何？"]
    result = echo_report(lines, ["おはようございます。今日もいい天気だね。", "たこ焼きや！"])
    assert result["n"] == 2 and result["echo_rate"] == 0.5
    assert result["echoes"] == [
        {"index": 0, "line": lines[0], "reply": "おはようございます。今日もいい天気だね。"}
    ]
    assert echo_report([], [])["echo_rate"] == 0.0


def test_tuned_heroines_echo_less_than_the_base_on_the_shipped_replies() -> None:
    """docs/results: the base Gemma 3 270M parrots some lines; akane's adapter never does."""
    rates = {}
    for run in ("base", "tuned"):
        path = ROOT / "docs" / "results" / "akane" / run / "generations.jsonl"
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        rows = [r for r in rows if r["condition"] == "system-prompt-on"]
        rates[run] = echo_report([r["query"] for r in rows], [r["text"] for r in rows])["echo_rate"]
    assert rates["base"] > 0.05 and rates["tuned"] < 0.02
