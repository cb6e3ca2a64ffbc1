"""Her card answers a profile question none of her candidates got right (Chatbot.card_answers).

Real pieces throughout: the sample cast's cards and lines (her voice is learned from them),
the real chat path on a tiny random model, whose sampled replies state no fact.
"""

from __future__ import annotations

import pytest

from serifu import plugins
from serifu.inference import load_chatbot
from serifu.inference.grounded import CardAnswers, needs_card_answer
from serifu.profile import card_facts, states

CAST = ["akane", "himari", "hina", "kaede", "rei", "sayaka", "shiori", "yuzuha"]


@pytest.mark.parametrize("cid", CAST)
def test_card_answers_state_every_fact_in_her_voice(cid: str) -> None:
    card = plugins.get_character(cid).card()
    answers = CardAnswers.for_character(cid, card)
    facts = [f for f in card_facts(card) if f.key != "name"]
    assert len(facts) >= 10
    texts = [answers.answer(f, f"{f.key}について教えて？") for f in facts]
    for fact, text in zip(facts, texts, strict=True):
        assert states(fact, text), (fact.key, text)
        assert (
            answers.answer(fact, f"{fact.key}について教えて？") == text
        )  # same question, same answer
    # her voice, not a neutral template: her first person, endings learned from her lines
    assert any(card.first_person in t for t in texts)
    assert answers.voice.endings != ["です。", "だよ。"]  # the analyser's fallback
    assert all(any(t.endswith(e) for e in answers.voice.endings) for t in texts)


def test_only_a_question_whose_candidates_all_miss_needs_the_card() -> None:
    facts = {f.key: f for f in card_facts(plugins.get_character("akane").card())}
    birthday = [facts["birthday"]]
    assert needs_card_answer(birthday, "誕生日いつ？", ["知らんわ", "たこ焼き！"])
    assert not needs_card_answer(birthday, "誕生日いつ？", ["知らんわ", "八月三日やで！"])
    assert not needs_card_answer(birthday, "誕生日おめでとう！", ["ありがとう！"])  # asks nothing
    assert not needs_card_answer([], "今日は暑いね？", ["せやな"])


def test_chat_path_answers_from_her_card_only_when_the_model_misses() -> None:
    bot = load_chatbot(
        model="tiny-gemma", character="akane", quantize=False, device="cpu", card_answers=True
    )
    plain = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    assert bot.card_answers is not None and plain.card_answers is None
    facts = {f.key: f for f in card_facts(bot.card)}
    question = "たんじょーびって、いつなん？"
    reply = bot.reply(question, max_new_tokens=8, seed=0)
    assert states(facts["birthday"], reply) and bot.grounded_replies == 1
    missed = plain.reply(question, max_new_tokens=8, seed=0)
    assert not states(facts["birthday"], missed)  # the random model's own reply misses it
    # evaluation-style batches mark the replaced reply
    [gen] = bot.generate_batch([question], max_new_tokens=8, seed=0)
    assert gen.grounded and gen.text == reply
    # an ordinary line is the model's own reply, unchanged
    line = "おはよう、今日もいい天気だね。"
    assert bot.reply(line, max_new_tokens=8, seed=0) == plain.reply(line, max_new_tokens=8, seed=0)
    assert bot.grounded_replies == 2
