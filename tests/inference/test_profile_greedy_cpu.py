"""A profile question's first candidate is the model's mode (Chatbot.profile_greedy): the
others are sampled with the same draws as before, ordinary lines are untouched."""

from __future__ import annotations

from serifu.inference import load_chatbot
from serifu.profile import Fact


def test_greedy_rows_take_the_mode_and_leave_the_other_draws_alone() -> None:
    bot = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    ids = bot.encode_prompt("誕生日っていつ？")
    sampled = bot._final([ids] * 3, 8, 0, params={"do_sample": True})
    mixed = bot._final([ids] * 3, 8, 0, params={"do_sample": True, "greedy_rows": (0,)})
    [greedy] = bot._final([ids], 8, 0, params={"do_sample": False})
    assert mixed[0].text == greedy.text != sampled[0].text  # row 0 changed to the mode
    assert [s.text for s in mixed[1:]] == [s.text for s in sampled[1:]]
    assert len({s.text for s in sampled}) > 1  # sampling differs row to row: the check bites


def test_cpu_default_puts_the_mode_among_profile_candidates_only() -> None:
    bot = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    assert bot.profile_greedy and bot.candidates("誕生日っていつ？") > 1
    assert bot._greedy_first("誕生日っていつ？")
    assert not bot._greedy_first("おはよう、今日もいい天気だね。")
    [greedy] = bot._final(
        [bot.encode_prompt("誕生日っていつ？")], 8, 0, params={"do_sample": False}
    )
    off = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    off.profile_greedy = False
    ids = bot.encode_prompt("誕生日っていつ？")
    sampled = off._final([ids] * 3, 8, 0, params={"do_sample": True})
    # the reply is one of: the mode, or the 2nd/3rd of the same sampled candidates
    reply = bot.reply("誕生日っていつ？", max_new_tokens=8, seed=0)
    assert reply in {greedy.text, sampled[1].text, sampled[2].text}
    # evaluation's batches give the same candidates as the chat path
    [batched] = bot.generate_batch(["誕生日っていつ？"], max_new_tokens=8, seed=0)
    assert batched.text == reply
    # an ordinary line streams its one sampled reply, as without the lever
    line = "おはよう、今日もいい天気だね。"
    assert bot.reply(line, max_new_tokens=8, seed=0) == off.reply(line, max_new_tokens=8, seed=0)


def test_gpu_style_best_of_keeps_all_candidates_sampled_by_default() -> None:
    two = load_chatbot(
        model="tiny-gemma", character="akane", quantize=False, device="cpu", best_of=2
    )
    assert not two.profile_greedy and not two._greedy_first("誕生日っていつ？")


def test_a_hiragana_reply_states_her_katakana_fact() -> None:
    from serifu import plugins
    from serifu.profile import card_facts, consistency, states

    facts = {f.key: f for f in card_facts(plugins.get_character("hina").card())}
    assert states(facts["favorite_food"], "ぷりん……いちばんすきなの")
    assert states(facts["favorite_food"], "プリンなの！")
    assert not states(facts["disliked_food"], "ぷりん……")
    assert consistency(list(facts.values()), "好物は？", "ぷりんなの").answered == ["favorite_food"]


def test_a_favourite_that_is_no_food_is_no_profile_question() -> None:
    from serifu.builtin.sample_cast import cast_ids
    from serifu.profile import asked_facts
    from serifu.profile_intent import OFF_CARD, off_card_questions, question_fact

    questions = off_card_questions()
    assert len(questions) >= len(OFF_CARD) * 10
    for cid in cast_ids():  # truly off the card: no topic pattern of any heroine matches
        facts = card_facts_of(cid)
        assert not any(asked_facts(facts, q) for q in questions)
    # a favourite the negatives never named (music) is not taken for her favourite food
    assert question_fact("好きな曲は？")[0] != "favorite_food"
    assert question_fact("好きな食べ物は？")[0] == "favorite_food"


def card_facts_of(cid: str) -> list[Fact]:
    from serifu import plugins
    from serifu.profile import card_facts

    return card_facts(plugins.get_character(cid).card())
