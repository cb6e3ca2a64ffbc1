"""Her output vocabulary's head on the static (CUDA-graph) decoding paths under
``Chatbot.decode``: the decoder computes only her rows, and replies, stops and
log-probabilities equal those of the full head masked to her vocabulary
(``SERIFU_FULL_HEAD=1``), for greedy requests (device-side loop) and seeded sampling with a
repetition penalty (host-pick loop). On the CPU ``SERIFU_STATIC_DECODE=any`` runs these paths
without CUDA graphs (the bodies the GPU captures)."""

from __future__ import annotations

from typing import Any

import pytest

from serifu.inference import load_chatbot

QUERIES = ("こんにちは", "今日の放課後は何をするつもりなの？", "ねえ")


@pytest.fixture(scope="module")
def bot() -> Any:
    bot = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    assert bot.rules.vocab is not None  # the sample cast decodes with her vocabulary
    bot.generation = {"do_sample": False}  # each test's params say the rest
    return bot


@pytest.fixture(autouse=True)
def _static(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")
    monkeypatch.setenv("SERIFU_DECODE_CHUNK", "4")


def _run(bot: Any, params: dict[str, Any], seed: int | None) -> tuple[list[Any], list[float]]:
    prompts = [bot.encode_prompt(q) for q in QUERIES]
    steps = [
        [(s.text, s.done, s.finish_reason, s.n_tokens) for s in states]
        for states in bot.decode(prompts, max_new_tokens=12, params=params, seed=seed)
    ]
    last = list(bot.decode(prompts, max_new_tokens=12, params=params, seed=seed))[-1]
    return steps, [s.logprob for s in last]


def _decoder(bot: Any) -> Any:
    """The decoder of the last call (the cache keeps the most recently used last)."""
    return list(bot.model.__dict__["_serifu_decoders"].values())[-1]


@pytest.mark.parametrize(
    ("params", "seed", "greedy"),
    [
        ({"do_sample": False}, None, True),  # the device-side greedy loop
        ({"do_sample": False, "repetition_penalty": 1.2}, None, False),  # host pick
        (
            {"do_sample": True, "temperature": 1.2, "top_p": 0.95, "repetition_penalty": 1.1},
            11,
            False,
        ),  # seeded sampling, host pick
    ],
)
def test_her_rows_give_the_replies_of_the_masked_full_head(
    bot: Any,
    monkeypatch: pytest.MonkeyPatch,
    params: dict[str, Any],
    seed: int | None,
    greedy: bool,
) -> None:
    bot.model.__dict__.pop("_serifu_decoders", None)  # fresh decoders: counters at 0
    fast = _run(bot, params, seed)
    decoder = _decoder(bot)
    assert decoder.head_rows is not None and decoder.vocab is bot.rules.vocab
    assert decoder.head_rows.shape[0] == len(bot.rules.vocab) < bot.model.config.vocab_size
    counter = int(decoder.counter)
    monkeypatch.setenv("SERIFU_FULL_HEAD", "1")  # the ablation switch: full head, masked
    slow = _run(bot, params, seed)
    assert _decoder(bot).head_rows is None and _decoder(bot) is not decoder
    assert fast[0] == slow[0]  # every step's text, stop and token count
    assert any(n > 0 for *_, n in fast[0][-1])
    assert fast[1] == pytest.approx(slow[1], abs=1e-4) and all(v < 0 for v in fast[1])
    # the greedy request ran the device loop (its counter moved), the others did not
    assert (counter > 0) == greedy
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "0")  # and the eager path (her rows too)
    monkeypatch.delenv("SERIFU_FULL_HEAD")
    assert _run(bot, params, seed)[0] == fast[0]
