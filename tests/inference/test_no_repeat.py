"""``no_repeat_ngram_size``: a reply never says the same n-token piece twice (loops such as
「媾合したくないよ。媾合したくないよ。…」 of an over-trained play speaker), on the eager and the
static (host-pick) decoding loops; the prompt's tokens are not counted."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.inference import load_chatbot
from serifu.inference.decoding import decode_steps, plain_greedy
from serifu.inference.sampling import ban_repeats

PATHS = {
    "eager": {"SERIFU_STATIC_DECODE": "0"},
    "static": {"SERIFU_STATIC_DECODE": "any", "SERIFU_GREEDY_CHUNK": "0"},
}


def _ngrams(ids: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def test_ban_repeats_looks_at_each_row_s_reply_only() -> None:
    seen = torch.tensor([[7, 8, 1, 2, 3, 1, 2], [1, 2, 5, 6, 1, 2, 9]])
    logits = torch.zeros(2, 10)
    banned = ban_repeats(logits, seen, 3, 2, 7) == float("-inf")
    # row 0: its reply 1 2 3 1 2 already holds "1 2 3"; row 1: "1 2" is in its prompt only
    assert banned.nonzero().tolist() == [[0, 3]]
    # per-row bounds (the continuous server's slots): row 1's reply is 1 2 5 6 1 2 -> ban 5
    start, end = torch.tensor([2, 0]), torch.tensor([7, 6])
    banned = ban_repeats(logits, seen, 3, start, end) == float("-inf")
    assert banned.nonzero().tolist() == [[0, 3], [1, 5]]
    # a reply shorter than n - 1 tokens bans nothing
    assert not (ban_repeats(logits, seen, 3, 6, 7) == float("-inf")).any()


@pytest.fixture(scope="module")
def bot() -> Any:
    return load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")


@pytest.mark.parametrize("path", sorted(PATHS))
def test_replies_never_repeat_an_ngram(
    bot: Any, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in PATHS[path].items():
        monkeypatch.setenv(key, value)
    prompts = [bot.encode_prompt(q) for q in ("こんにちは", "ねえ、今日は何してたの？")]
    kwargs: dict[str, Any] = {"pad_id": 0, "eos_ids": set(), "max_new_tokens": 40}
    free = list(decode_steps(bot.model, prompts, is_done=lambda r, i: False, params={"do_sample": False}, **kwargs))[-1]  # fmt: skip
    # the tiny random model loops when nothing stops it
    assert any(len(set(_ngrams(r, 3))) < len(_ngrams(r, 3)) for r in free)
    for params in ({"do_sample": False}, {"do_sample": True, "temperature": 1.0}):
        params = {**params, "no_repeat_ngram_size": 3}
        steps = decode_steps(
            bot.model, prompts, is_done=lambda r, i: False, params=params, seed=3, **kwargs
        )
        last = list(steps)[-1]
        assert all(len(r) == 40 for r in last)
        for row in last:
            assert len(set(_ngrams(row, 3))) == len(_ngrams(row, 3)), (params, row)


def test_it_keeps_greedy_requests_off_the_device_side_loop() -> None:
    """That loop picks on the device without the reply so far; the host-pick loop has it."""
    assert plain_greedy({"do_sample": False}, {1})
    assert not plain_greedy({"do_sample": False, "no_repeat_ngram_size": 4}, {1})
    assert plain_greedy({"do_sample": False, "no_repeat_ngram_size": 0}, {1})


def test_load_chatbot_sets_or_refuses_the_size() -> None:
    from serifu.errors import SerifuError

    with pytest.raises(SerifuError, match="at least 2"):
        load_chatbot(model="tiny-gemma", character="akane", no_repeat_ngram=1)
    bot = load_chatbot(model="tiny-gemma", character="akane", quantize=False, no_repeat_ngram=4)
    assert bot.generation["no_repeat_ngram_size"] == 4
    assert bot.generation["temperature"] == 0.7  # the model's other defaults stay
