"""Recognising which profile fact a player's line asks (``Reranker.asked``: topic patterns,
then the question classifier), on wordings of this file's own: none of them is in
bench/profile_paraphrase.py's sets, in augmentation's templates or in a card."""

from __future__ import annotations

import pytest

from serifu import plugins
from serifu.inference.rerank import Reranker
from serifu.profile import asked_facts, asks_her_fact, card_facts, is_question, question_text

# written before recognition was broadened for them (session 8); baseline 22/24 right and
# two of the lines below triggered a fact
GENERIC = {
    "age": ["今年でいくつになるんだっけ？", "何歳か聞いてもいい？"],
    "grade": ["何年生か教えてくれる？", "学年いっこ上だっけ？"],
    "birthday": ["お誕生日は何月？", "生まれたのっていつ頃？"],
    "zodiac": ["星座はなにかな？", "何座の人？"],
    "blood_type": ["血液型って聞いてもいい？", "血液型、何だったっけ？"],
    "height_cm": ["身長どれくらいあるの？", "背って何センチくらい？"],
    "hobbies": ["趣味とかある？", "オフの日は何してる？"],
    "specialty": ["特技とかあったら教えて", "得意なことってなんかある？"],
    "favorite_food": ["好きな食べものってなに？", "一番好きなご飯って何？"],
    "disliked_food": ["嫌いな食べ物とかある？", "苦手な料理ってある？"],
    "club": ["部活は何してるの？", "なに部？"],
    "friends": ["友達って誰と仲いいの？", "仲良しの子っている？"],
}
NOT_PROFILE = [
    "おやすみ、また明日",
    "誕生日会楽しかったね",
    "好きな音楽は？",
    "今日は何曜日だっけ？",
    "明日の天気どうかな",
    "宿題終わった？",
    "友達の家に寄ってくね",
    "その本おもしろい？",
]
# kana and katakana spellings of the facts' own words
KANA = {
    "hobbies": "シュミは？",
    "specialty": "とくぎは？",
    "club": "ぶかつなにやってる？",
    "zodiac": "せいざおしえて",
    "height_cm": "しんちょうは？",
    "birthday": "タンジョービいつ？",
    "friends": "ともだちだれ？",
    "disliked_food": "きらいなたべものは？",
}


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    return Reranker(facts=card_facts(plugins.get_character("hina").card()))


def test_generic_wordings_are_recognised_as_their_fact(reranker: Reranker) -> None:
    got = {q: [f.key for f in reranker.asked(q)] for qs in GENERIC.values() for q in qs}
    wrong = {q: g for k, qs in GENERIC.items() for q in qs if (g := got[q]) != [k]}
    assert len(wrong) <= 1, wrong
    assert not any(set(g) - {k} for k, qs in GENERIC.items() for q in qs if (g := got[q]))


def test_small_talk_that_looks_like_a_profile_question_asks_no_fact(reranker: Reranker) -> None:
    assert {q: [f.key for f in reranker.asked(q)] for q in NOT_PROFILE} == dict.fromkeys(
        NOT_PROFILE, []
    )


def test_kana_spellings_match_the_topic_patterns() -> None:
    facts = card_facts(plugins.get_character("rei").card())
    assert {k: [f.key for f in asked_facts(facts, q)] for k, q in KANA.items()} == {
        k: [k] for k in KANA
    }


def test_recognition_reads_kana_and_long_vowels_alike() -> None:
    assert question_text("タンジョービ") == "たんじょうび"
    assert question_text("すきーなケーキ") == "すきいなけえき"
    assert question_text("ＡＢ型 ですか") == "AB型ですか"
    assert question_text("んー") == "んー"


def test_a_statement_asks_nothing_and_a_question_does() -> None:
    for line in ("部活がんばってね！", "何年経っても忘れないよ", "誕生日にケーキ焼いたよ"):
        assert not is_question(line), line
    for line in ("趣味は", "身長って", "好物おしえて～", "友達いる", "何型"):
        assert is_question(line), line


def test_her_name_beside_another_fact_is_that_fact() -> None:
    facts = card_facts(plugins.get_character("kaede").card())
    assert [f.key for f in asked_facts(facts, "親友の名前って？")] == ["friends"]
    assert [f.key for f in asked_facts(facts, "名前は？")] == ["name"]


def test_a_question_about_the_player_or_her_opinion_asks_no_fact_of_hers(
    reranker: Reranker,
) -> None:
    # his own facts, her guess or judgement: patterns and classifier would take them for hers
    for line in (
        "僕って何歳に見える？",
        "俺の誕生日、いつか覚えてる？",
        "僕は何部に入ればいいと思う？",
        "おみくじとか信じるほう？",
        "先輩へのプレゼント、何がいいと思う？",
        "部活って何時に終わる？",
        "誕生日会は何時から？",
    ):
        assert reranker.asked(line) == [], line
    # his word beside a question to her still asks hers
    assert [f.key for f in reranker.asked("俺はB型なんだけど、きみは何型？")] == ["blood_type"]
    assert [f.key for f in reranker.asked("僕と同じくらいの背かな？何センチ？")] == ["height_cm"]
    from serifu.builtin.sample_cast import cast_ids

    cards = [q.q for cid in cast_ids() for q in plugins.get_character(cid).card().questions]
    assert [q for q in cards if not asks_her_fact(q)] == []


def test_every_augmentation_template_is_a_question() -> None:
    # question_fact answers none for a line that asks nothing, so a template that is no
    # question by :func:`is_question` would teach the classifier nothing
    from serifu.data.augment import FRAMES, LEADS, QUESTIONS, TOPICS

    lines = [q.format(n="君") for qs in QUESTIONS.values() for q in qs]
    lines += [f.format(t=t, n="君") for f in FRAMES for ts in TOPICS.values() for t in ts]
    lines += [lead + "趣味は？" for lead in LEADS]
    assert [x for x in lines if not is_question(x)] == []
    assert [x for x in lines if not asks_her_fact(x)] == []
