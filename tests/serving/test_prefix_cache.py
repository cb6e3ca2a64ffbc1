"""Cached prompt prefixes (``serifu.accel.prefix``) on the static decoder, on the CPU.

``SERIFU_STATIC_DECODE=any`` runs the static decoder's code without graphs. Each heroine's
system prompt is cached once per adapter; later batches copy it into their rows' cache slots
and run only the rest of each prompt. The replies (tokens, text, log-probabilities) must be
those of running every prompt whole, for a mix of heroines with their own adapters, and a
prefix must never serve another adapter's rows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("fastapi")

from .conftest import save_random_adapters

CIDS = ["akane", "rei", "hina"]
QUERIES = ["おはよう", "今日の放課後は何をするつもりなの？", "部活どう？"]
PENALTY: dict[str, Any] = {"do_sample": False, "repetition_penalty": 1.3}  # host-pick loop


@pytest.fixture(scope="module")
def heroines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import torch

    from serifu.inference import load_chatbot
    from serifu.serving.heroines import heroines_on

    torch.set_num_threads(1)
    paths = save_random_adapters(
        tmp_path_factory.mktemp("prefix"), CIDS, seed=20, alpha=8, alpha_step=4
    )
    bot = load_chatbot(
        model="tiny-gemma", system_prompt=False, device="cpu", quantize=False, vocabulary="off"
    )
    return heroines_on(bot, paths, vocabulary="off")


def _replies(heroines: dict[str, Any], batch: list[tuple[str, str]], prefixes: bool) -> list:
    """Decode one mixed batch (row: heroine, query) through the stacked adapters; with
    ``prefixes``, each row names her system prompt as its shared prefix (the engine's spec)."""
    from serifu.serving.engine import Engine
    from serifu.serving.mixed_lora import MixedLora

    engine = Engine(heroines)
    base = heroines[CIDS[0]].bot
    mixed = MixedLora.for_model(base.model)
    assert mixed is not None
    mixed.install(base.model)
    prompts = [heroines[c].encoder.encode_prompt(q) for c, q in batch]
    specs = [engine._prefix_spec(heroines[c], p) for (c, _), p in zip(batch, prompts, strict=True)]
    with mixed.rows(base.model, [heroines[c].adapter_name for c, _ in batch]):
        steps = list(
            base.decode(
                prompts, max_new_tokens=8, params=PENALTY, prefixes=specs if prefixes else None
            )
        )
    return [(s.text, s.n_tokens, s.logprob) for s in steps[-1]]


def _cache(heroines: dict[str, Any]) -> Any:
    from serifu.accel.prefix import prefix_cache

    return prefix_cache(heroines[CIDS[0]].bot.model)


def _same(a: list, b: list) -> None:
    assert [(t, n) for t, n, _ in a] == [(t, n) for t, n, _ in b]
    assert all(abs(x[2] - y[2]) < 1e-3 for x, y in zip(a, b, strict=True))


def test_cached_system_prompts_give_the_whole_prompt_replies(
    heroines: dict[str, Any], monkeypatch: Any
) -> None:
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")
    batch = [(c, q) for q in QUERIES for c in CIDS][:8]
    whole = _replies(heroines, batch, prefixes=False)
    assert len({t for t, _, _ in whole}) > 3  # the heroines' adapters and queries differ
    cache = _cache(heroines)
    first = _replies(heroines, batch, prefixes=True)  # all miss: whole prompts, then cached
    assert len(cache) == len(CIDS) and cache.hits == 0 and cache.misses == len(batch)
    _same(first, whole)
    again = _replies(heroines, batch, prefixes=True)  # every row copies its prefix
    assert cache.hits == len(batch)
    _same(again, whole)
    # another order and other queries: prefixes found by (adapter, tokens), not by row
    other = [("hina", "ねえ、聞いてる？"), ("akane", "また明日ね"), ("rei", "おはよう")]
    before = cache.hits
    _same(_replies(heroines, other, prefixes=True), _replies(heroines, other, prefixes=False))
    assert cache.hits == before + 3


def test_a_prefix_never_serves_another_adapters_rows(
    heroines: dict[str, Any], monkeypatch: Any
) -> None:
    """Her system prompt's keys and values depend on her adapter: with akane's prompt on
    rei's adapter, rei's cached prefix (other tokens) and akane's (other adapter) do not
    match, so the row runs whole and its own prefix is cached under rei's adapter."""
    from serifu.serving.engine import Engine

    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")
    cache = _cache(heroines)
    _replies(heroines, [("akane", "おはよう"), ("rei", "おはよう")], prefixes=True)
    rei, akane = heroines["rei"], heroines["akane"]
    prompt = akane.encoder.encode_prompt("おはよう")
    spec = Engine(heroines)._prefix_spec(akane, prompt)
    assert spec is not None and spec[0] == akane.adapter_name
    assert cache.find(rei.adapter_name, prompt) is None  # not rei's: other adapter key
    assert cache.find(akane.adapter_name, prompt) is not None
    assert cache.find(rei.adapter_name, rei.encoder.encode_prompt("x")) is not None


def test_the_engine_warm_up_caches_every_heroines_prefix_and_batches_use_them(
    heroines: dict[str, Any], monkeypatch: Any
) -> None:
    """``Engine.warm_up`` leaves each heroine's system prompt cached; a served batch of three
    heroines then copies all three (every row a hit) and each client gets the reply of the
    engine without the prefix cache."""
    from serifu.serving.engine import Engine, Job

    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")
    base = heroines[CIDS[0]].bot
    base.model.get_base_model().__dict__.pop("_serifu_prefixes", None)

    async def serve(prefixes: bool) -> dict[str, str]:
        engine = Engine(heroines, max_batch=4, continuous=False, prefix_cache=prefixes)
        engine.warm_up(max_tokens=8, turn="こんにちは")
        loop = asyncio.get_running_loop()
        jobs = {
            c: Job(
                heroines[c],
                [heroines[c].encoder.encode_prompt("部活どう？")],
                8,
                PENALTY,
                [],
                None,
                False,
                loop,
            )
            for c in CIDS
        }
        engine.start()
        with engine._cond:  # all waiting before the worker takes the first
            for job in jobs.values():
                engine.submit(job)
        texts = {}
        for c, job in jobs.items():
            texts[c] = ""
            while (event := await job.events.get()).kind == "delta":
                texts[c] += event.text
        await asyncio.to_thread(engine.stop)
        assert engine.batches == 1
        return texts

    plain = asyncio.run(serve(False))
    cache = _cache(heroines)
    assert len(cache) == 0  # prefix_cache=False caches nothing
    cached = asyncio.run(serve(True))
    cache = _cache(heroines)
    keys = {key for key, _ in cache._entries}
    assert {heroines[c].adapter_name for c in CIDS} <= keys  # every heroine's, by warm-up
    assert cache.hits >= len(CIDS)
    assert cached == plain
