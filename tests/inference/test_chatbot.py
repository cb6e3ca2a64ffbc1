"""The inference API: prompt, own decoding loop (== generate), newline/EOS stop, batch, stream, score."""

from __future__ import annotations

import pytest
import torch

from serifu.inference import load_chatbot

REPLY = "別に。礼はいらない。"


@pytest.fixture(scope="module")
def taught_bot():
    """tiny-llama (full precision) taught one reply by a few real gradient steps."""
    bot = load_chatbot(
        model="tiny-llama", character="rei", system_prompt=False, quantize=False, device="cpu"
    )
    tok = bot.tokenizer
    prompt_ids = tok(bot.render_prompt("ありがとう"))["input_ids"]
    reply_ids = tok(REPLY + bot.template.reply_end, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + reply_ids])
    labels = torch.tensor([[-100] * len(prompt_ids) + reply_ids])
    opt = torch.optim.Adam(bot.model.parameters(), lr=1e-2)
    bot.model.train()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(60):
            bot.model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
    bot.model.eval()
    bot.generation = {"do_sample": False}
    return bot


def test_generation_stops_at_the_newline(taught_bot) -> None:
    [gen] = taught_bot.generate_batch(["ありがとう"], max_new_tokens=30)
    assert gen.text == REPLY and gen.stopped and gen.n_tokens < 30
    assert "".join(taught_bot.stream("ありがとう", max_new_tokens=30)) == REPLY
    assert taught_bot.reply("ありがとう", max_new_tokens=30) == REPLY


def test_batched_left_padding_matches_single(taught_bot) -> None:
    queries = ["ありがとう", "職員室ってどこにあるのか教えてくれないか？"]
    batched = taught_bot.generate_batch(queries, max_new_tokens=8)
    single = [taught_bot.generate_batch([q], max_new_tokens=8)[0] for q in queries]
    assert [g.text for g in batched] == [g.text for g in single]


def test_token_limit_reports_not_stopped(taught_bot) -> None:
    [gen] = taught_bot.generate_batch(["ありがとう"], max_new_tokens=2)
    assert not gen.stopped and gen.n_tokens == 2


def test_score_prefers_the_taught_reply(taught_bot) -> None:
    prompt = taught_bot.render_prompt("ありがとう")
    (good, n_good), (bad, n_bad) = taught_bot.score([prompt, prompt], [REPLY, "めっちゃええやん！"])
    assert (
        n_good == len(taught_bot.tokenizer(REPLY, add_special_tokens=False)["input_ids"])
        and n_bad > 0
    )
    assert good / n_good < bad / n_bad


@pytest.mark.parametrize("model_id", ["tiny-gemma", "tiny-gptj", "tiny-neox"])
def test_own_decoding_loop_matches_generate(model_id: str) -> None:
    bot = load_chatbot(model=model_id, character="akane", quantize=False, device="cpu")
    bot.generation = {"do_sample": False}
    from serifu.inference.decoding import decode_steps

    prompts = [
        bot.tokenizer(t)["input_ids"] for t in ("こんにちは", "今日の放課後は何をするつもりなの？")
    ]
    generated: list[list[int]] = []
    for step in decode_steps(
        bot.model,
        prompts,
        pad_id=0,
        eos_ids=set(),
        params=bot.generation,
        max_new_tokens=6,
        is_done=lambda r, ids: False,
    ):
        generated = step
    for row, ids in enumerate(prompts):
        ref = bot.model.generate(
            torch.tensor([ids]),
            max_new_tokens=6,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
        assert generated[row] == ref[0, len(ids) :].tolist()


def test_eos_stops_generation() -> None:
    bot = load_chatbot(model="tiny-gptj", quantize=False, device="cpu")
    bot.generation = {"do_sample": False}
    with torch.no_grad():
        bot.model.lm_head.bias[bot.tokenizer.eos_token_id] = (
            1e4  # the real model now always says EOS
        )
    [gen] = bot.generate_batch(["こんにちは"], max_new_tokens=10)
    assert gen.text == "" and gen.stopped and gen.n_tokens == 0
    assert bot.card is None and bot.system is None
