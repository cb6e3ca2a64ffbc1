"""Augmentation's question side: each template asks the one fact it trains."""

from __future__ import annotations

from serifu import plugins
from serifu.data.augment import FRAMES, LEADS, QUESTIONS, TOPICS, augment_pairs
from serifu.profile import asked_facts, card_facts, is_question


def _templates() -> list[tuple[str, str]]:
    rows = [(q.format(n="君"), k) for k, qs in QUESTIONS.items() for q in qs]
    rows += [(f.format(t=t, n="君"), k) for f in FRAMES for k, ts in TOPICS.items() for t in ts]
    return rows


def test_no_template_is_taken_for_another_fact() -> None:
    # the reranker rewards the fact the topic patterns find: a template they read as another
    # fact trains one answer and reranks for another (「誕生日から言うと何座？」)
    facts = card_facts(plugins.get_character("akane").card())
    crossed = []
    for question, key in _templates():
        found = [f.key for f in asked_facts(facts, question)]
        if found and found != [key]:
            crossed.append((question, key, found))
    assert crossed == []


def test_templates_are_many_and_every_lead_keeps_a_question() -> None:
    rows = _templates()
    assert len({q for q, _ in rows}) > 400
    assert {k for _, k in rows} >= {"age", "hobbies", "favorite_food", "friends"}
    assert all(is_question(lead + "好物は？") for lead in LEADS)


def test_augmented_rows_keep_their_answer_side() -> None:
    pack = plugins.get_character("rei")
    card = pack.card()
    rows = augment_pairs(card, ["そうだね。", "私は弓道部だよ。"], n=60, seed=0)
    facts = {f.key: f for f in card_facts(card)}
    for row in rows:
        key = row["scene"].removeprefix("augmented#")
        assert any(form in row["reply"] for form in facts[key].forms + facts[key].items), row


def test_some_questions_are_spelt_in_kana_but_never_a_cards_own() -> None:
    from serifu.data.characters import character_utterances
    from serifu.profile import in_kana, normalise

    pack = plugins.get_character("himari")
    card = pack.card()
    lines = [u.text for u in character_utterances(pack) if u.speaker == card.short_name][:300]
    rows = augment_pairs(card, lines, n=1000, seed=2, speaker=card.short_name)
    questions = [normalise(r["query"]) for r in rows]
    kana_words = ("しゅみ", "とくぎ", "ぶかつ", "たんじょうび", "しんちょう", "せいざ", "ともだち")
    kana = [q for q in questions if any(w in q for w in kana_words)]
    assert 0.03 * len(rows) < len(kana) < 0.3 * len(rows)
    card_spellings = {normalise(f(q.q)) for q in card.questions for f in (str, in_kana)}
    assert not card_spellings & set(questions)
