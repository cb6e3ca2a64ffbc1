"""The CPU default reranks only lines that ask about her profile (Chatbot.profile_best_of):
ordinary lines keep streaming at best-of-1's latency, a profile question gets candidates
checked against her card."""

from __future__ import annotations

from serifu.inference import load_chatbot
from serifu.inference.chatbot import PROFILE_BEST_OF_CPU


def test_cpu_default_reranks_profile_questions_only() -> None:
    bot = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    assert bot.best_of_n == 1 and bot.profile_best_of == PROFILE_BEST_OF_CPU > 1
    assert bot.rerank is not None and bot.rerank.classifier is None  # the card decides
    assert bot.candidates("誕生日っていつ？") == PROFILE_BEST_OF_CPU  # a topic pattern
    assert bot.candidates("ちなみに血液型は？") == PROFILE_BEST_OF_CPU
    assert bot.candidates("おはよう、今日もいい天気だね。") == 1
    assert bot.candidates("しゅみは？") == PROFILE_BEST_OF_CPU  # kana spelling
    assert bot.candidates("部活がんばってね！") == 1  # a topic word, but no question
    # a reranked reply arrives as one piece; an ordinary one streams
    pieces = list(bot.stream("誕生日っていつ？", max_new_tokens=6, seed=0))
    assert len(pieces) == 1
    assert bot.reply("誕生日っていつ？", max_new_tokens=6, seed=0) == pieces[0]  # seeded
    # evaluation's batches take the same path: each query in its candidate group, in order
    queries = ["おはよう", "誕生日っていつ？", "またね", "ちなみに血液型は？"]
    out = bot.generate_batch(queries, max_new_tokens=4, seed=0)
    assert [g.prompt for g in out] == [bot.render_prompt(q) for q in queries]
    alone = bot.generate_batch(["誕生日っていつ？", "ちなみに血液型は？"], max_new_tokens=4, seed=0)
    assert [g.text for g in alone] == [out[1].text, out[3].text]


def test_an_explicit_best_of_or_zero_profile_rerank_turns_it_off() -> None:
    two = load_chatbot(
        model="tiny-gemma", character="akane", quantize=False, device="cpu", best_of=2
    )
    assert two.candidates("おはよう") == two.candidates("誕生日っていつ？") == 2
    off = load_chatbot(
        model="tiny-gemma", character="akane", quantize=False, device="cpu", profile_best_of=1
    )
    assert off.rerank is None and off.candidates("誕生日っていつ？") == 1
    plain = load_chatbot(model="tiny-gemma", quantize=False, device="cpu")  # no card
    assert plain.rerank is None and plain.candidates("誕生日っていつ？") == 1
