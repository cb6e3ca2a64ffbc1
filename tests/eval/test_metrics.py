"""The pure metric functions: style markers, divergence, diversity, format, profile-QA, perplexity."""

from __future__ import annotations

import math

import pytest

from serifu.evaluation.divergence import distribution, jensen_shannon
from serifu.evaluation.diversity import distinct_n, diversity
from serifu.evaluation.morph import morphemes
from serifu.evaluation.perplexity import perplexity, reduction
from serifu.evaluation.profile_qa import answer_is_correct, profile_qa
from serifu.evaluation.reply_format import reply_format
from serifu.evaluation.style import compare_style, first_pronoun, sentence_ending, style_markers
from serifu.evaluation.textnorm import kanji_numeral, normalize


def test_sentence_endings_and_first_person() -> None:
    assert sentence_ending(morphemes("楓でいいわよ")) == "わよ"
    assert sentence_ending(morphemes("負けるわけないじゃない！")) == "ないじゃない"
    assert sentence_ending(morphemes("はい、参りましょう")) == "ましょう"
    assert sentence_ending(morphemes("たこ焼き")) == "[名詞]"
    assert sentence_ending(morphemes("！？")) is None
    assert first_pronoun(morphemes("あたしが一番よ")) == "あたし"
    assert first_pronoun(morphemes("ウチはな")) == "うち"
    assert first_pronoun(morphemes("こんにちは")) == "(none)"


def test_style_markers_rates() -> None:
    markers = style_markers(["……そう。", "やった！", "", "本当に?"])
    assert markers.ellipsis == [True, False, False, False]
    assert markers.exclamation == [False, True, False, False]
    assert markers.question == [False, False, False, True]
    assert markers.lengths == [5, 4, 0, 4]


def test_jensen_shannon_bounds() -> None:
    p = distribution(["a", "a", "b"])
    assert jensen_shannon(p, p) == pytest.approx(0.0)
    assert jensen_shannon(distribution(["a"]), distribution(["b"])) == pytest.approx(1.0)
    assert 0 < jensen_shannon(p, distribution(["a", "b"])) < 0.1
    assert jensen_shannon({}, p) == 1.0 and jensen_shannon({}, {}) == 0.0


def test_compare_style_prefers_the_same_voice() -> None:
    real = [
        "ふん、負けないんだから！",
        "べ、別にあんたのためじゃないわよ！",
        "あたしが一番なんだから！",
    ]
    close = ["ふん、あたしの勝ちなんだから！", "べ、別に嬉しくないわよ！"]
    far = ["わたくし、参りますわ。", "ごきげんよう、皆さま。"]
    assert compare_style(close, real)["jsd_mean"] < compare_style(far, real)["jsd_mean"]
    garbage = compare_style(["", "@@##", "\n\n"], real)  # must not fail
    assert 0 <= garbage["jsd_mean"] <= 1


def test_diversity() -> None:
    assert distinct_n(["同じ言葉", "同じ言葉"], 1) == pytest.approx(0.5)
    assert distinct_n([], 2) == 0.0 and distinct_n(["", ""], 1) == 0.0
    assert diversity(["a", "a", "b"])["unique_replies"] == pytest.approx(2 / 3, abs=1e-4)


def test_reply_format() -> None:
    result = reply_format(["はい。", "", "一行目\n二行目", "途中で"], [True, True, True, False])
    assert result["ok_rate"] == 0.25
    assert result["empty_rate"] == 0.25
    assert result["multi_line_rate"] == 0.25
    assert result["cut_off_rate"] == 0.25
    assert reply_format([], [])["n"] == 0
    assert reply_format(["はい。\n"], [True])["ok_rate"] == 1.0  # the stop newline itself is fine


def test_normalize_and_numerals() -> None:
    assert normalize("Ｏ型　です") == "o型です"
    assert normalize("カツドン") == "かつどん"
    assert [kanji_numeral(n) for n in (17, 163, 2, 10, 1000)] == [
        "十七",
        "百六十三",
        "二",
        "十",
        "千",
    ]


@pytest.mark.parametrize(
    ("reply", "answers", "ok"),
    [
        ("あたしは１７歳よ！", [["17"]], True),
        ("十七歳なんだから", [["17"]], True),
        ("十八歳よ", [["17"]], False),
        ("シイタケは苦手", [["しいたけ"]], True),
        ("5月5日、こどもの日よ", [["5月5日"]], True),
        ("五月五日", [["5月5日"]], True),
        ("ランニングよ", [["ランニング"], ["格闘ゲーム"]], False),
        ("ランニングと格ゲー", [["ランニング"], ["格闘ゲーム", "格ゲー"]], True),
        ("", [["17"]], False),
    ],
)
def test_profile_answers(reply: str, answers: list[list[str]], ok: bool) -> None:
    assert answer_is_correct(reply, answers) is ok


def test_profile_qa_accuracy() -> None:
    result = profile_qa(["何歳？", "血液型は？"], ["17歳", "知らない"], [[["17"]], [["O型"]]])
    assert (result["correct"], result["n"], result["accuracy"]) == (1, 2, 0.5)


def test_perplexity() -> None:
    assert perplexity([(2.0, 2), (4.0, 2)]) == pytest.approx(math.exp(1.5))
    assert perplexity([]) is None and perplexity([(0.0, 0)]) is None
    assert reduction(10.0, 6.0) == pytest.approx(0.4)
    assert reduction(None, 3.0) is None
