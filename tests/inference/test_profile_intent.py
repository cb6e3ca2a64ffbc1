"""The learned fallback that names the fact a profile question asks about."""

from __future__ import annotations

from types import SimpleNamespace

from serifu import plugins
from serifu.inference.rerank import Reranker
from serifu.profile import asked_facts, card_facts, in_kana, question_text
from serifu.profile_intent import (
    MIN_PROBABILITY,
    off_card_questions,
    ordinary_lines,
    question_fact,
    training_questions,
)


def _card_questions() -> set[str]:
    from serifu.builtin.sample_cast import cast_ids

    return {q.q for cid in cast_ids() for q in plugins.get_character(cid).card().questions}


def test_never_trained_on_test_questions() -> None:
    from bench.profile_paraphrase import NEGATIVES, SETS

    assert set(SETS) >= {"A", "B", "C"} and len(NEGATIVES) >= 10
    # compared as recognition reads them, in kanji and in the kana spelling trained too
    trained = {question_text(t) for q, _ in training_questions() for t in (q, in_kana(q))}
    trained |= {question_text(q) for q in ordinary_lines() + off_card_questions()}
    held_out = {q for s in SETS.values() for qs in s.values() for q in qs} | _card_questions()
    assert not trained & {question_text(q) for q in held_out | set(NEGATIVES)}


def test_names_facts_of_new_wordings_and_not_small_talk() -> None:
    # wordings none of its templates use, and lines that ask for no fact
    assert question_fact("空いてる時間は何をして過ごしてる？")[0] == "hobbies"
    assert question_fact("人より上手にできることって何？")[0] == "specialty"
    for line in ("おはよう、今日もいい天気だね", "昨日のテレビ見た？", "一緒に帰ろう"):
        key, p = question_fact(line)
        assert key == "none" or p < MIN_PROBABILITY, (line, key, p)
    assert question_fact("部活、がんばってね") == ("none", 1.0)  # no question: no model


def test_kana_spellings_are_learned_with_the_kanji_ones() -> None:
    assert in_kana("趣味は何？") == "しゅみはなに？"
    assert in_kana("何年生？") == "なんねんせい？"
    assert in_kana("何月何日生まれ？") == "なんがつなんにちうまれ？"
    key, p = question_fact("とくいなことってなにかある？")
    assert key == "specialty" and p >= MIN_PROBABILITY, (key, p)


def test_reranker_prefers_the_candidate_that_answers_the_classified_fact() -> None:
    card = plugins.get_character("akane").card()
    facts = card_facts(card)
    question = "空いてる時間は何をして過ごしてる？"
    assert not asked_facts(facts, question)  # the topic patterns do not see it
    hobby = next(f for f in facts if f.key == "hobbies")
    right = SimpleNamespace(text=f"{hobby.items[0]}やで！", stopped=True, n_tokens=5, logprob=-5.0)
    wrong = SimpleNamespace(text="なんでもええやん！", stopped=True, n_tokens=5, logprob=-4.0)
    reranker = Reranker(facts=facts)
    assert [f.key for f in reranker.asked(question)] == ["hobbies"]
    assert reranker.best(question, [wrong, right]) == 1
    assert Reranker(facts=facts, intent=False).best(question, [wrong, right]) == 0
