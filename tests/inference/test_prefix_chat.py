"""Chat and the game with her system prompt cached (``Chatbot.prefix_cache``), on the CPU.

With ``prefix_cache`` the chatbot's sampled replies run on the static decoder (eagerly on
the CPU) and copy her system prompt's keys and values from the model's prefix cache after
the first reply. The replies must be the plain path's: same text for the same seed, greedy
with a penalty too, and with a conversation history; a LoRA switched off must not reuse keys
and values computed with it on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model

    from serifu.inference import load_chatbot
    from serifu.modeling import load_model, resolve_base

    torch.set_num_threads(1)
    torch.manual_seed(3)
    base = resolve_base("tiny-gemma")
    lm = load_model(base, quantize=False, device="cpu")
    config = LoraConfig(r=4, target_modules=list(base.lora_targets), init_lora_weights=False)
    folder = Path(tmp_path_factory.mktemp("prefix-chat")) / "adapter"
    get_peft_model(lm, config).save_pretrained(str(folder))
    return load_chatbot(
        model="tiny-gemma",
        adapter=folder,
        character="akane",
        device="cpu",
        quantize=False,
        vocabulary="off",
        best_of=1,
        profile_best_of=1,
    )


def _cache(bot: Any) -> Any:
    from serifu.accel.prefix import prefix_cache

    return prefix_cache(bot.model)


def _replies(bot: Any, on: bool, params: dict[str, Any]) -> list[str]:
    bot.prefix_cache = on
    history = [("おはよう", "おはよう！"), ("今日は晴れだね", "せやな")]
    out = []
    for i, (query, past) in enumerate(
        [("何歳？", ()), ("部活どう？", history[:1]), ("放課後ひま？", history)]
    ):
        ids = bot.encode_prompt(query, past)
        states = list(bot.decode([ids], max_new_tokens=8, params=params, seed=i))
        out.append(states[-1][0].text)
    return out


@pytest.mark.parametrize(
    "params",
    [
        {"do_sample": True, "temperature": 1.0, "top_p": 0.95, "repetition_penalty": 1.1},
        {"do_sample": False, "repetition_penalty": 1.3},
    ],
)
def test_cached_system_prompt_gives_the_plain_replies(bot: Any, params: dict[str, Any]) -> None:
    plain = _replies(bot, False, params)
    assert len(set(plain)) > 1
    cache = _cache(bot)
    before = (cache.hits, len(cache))
    assert _replies(bot, True, params) == plain
    assert len(cache) >= 1  # her system prompt is cached
    assert cache.hits >= before[0] + 2  # the second and third replies copied it
    assert _replies(bot, True, params) == plain


def test_an_adapter_switched_off_does_not_reuse_its_keys(bot: Any) -> None:
    params = {"do_sample": False, "repetition_penalty": 1.3}
    _replies(bot, True, params)  # cached with the adapter on
    bot.prefix_cache = False
    with bot.model.disable_adapter():
        plain_off = _replies(bot, False, params)
        cache = _cache(bot)
        hits = cache.hits
        assert _replies(bot, True, params) == plain_off
        keys = {key for key, _ in cache._entries}
    assert len(keys) >= 2  # adapter on and off: two keys for the same tokens
    assert cache.hits >= hits + 2
