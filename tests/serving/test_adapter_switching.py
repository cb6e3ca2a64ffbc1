"""Several heroines' LoRA adapters on one base: each reply equals her own single-adapter bot's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu import plugins

httpx = pytest.importorskip("httpx")

from .conftest import _serve  # noqa: E402

QUERY = "こんにちは、今日は何するの？"


def _card(name: str) -> dict:
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": name,
            "description": f"{name} is a classmate.",
            "mes_example": "<START>\n{{user}}: おはよう\n{{char}}: おはよう、今日も元気だね",
        },
    }


def _adapter(out: Path, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from serifu.modeling import load_model, resolve_base

    torch.manual_seed(seed)
    lm = load_model(resolve_base("tiny-gemma"), quantize=False, device="cpu")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(lm, config).save_pretrained(str(out))


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serifu.cards import import_card

    root = tmp_path_factory.mktemp("packs")
    for name, seed in (("mina", 1), ("nomi", 2)):
        source = root.parent / f"{name}.json"
        source.write_text(json.dumps(_card(name)), encoding="utf-8")
        folder = import_card(source, into=root)
        _adapter(folder / "adapters" / "tiny-gemma", seed)
    return root


def _greedy(bot, query: str) -> str:
    [state] = list(
        bot.decode([bot.encode_prompt(query)], max_new_tokens=12, params={"do_sample": False})
    )[-1]
    return state.text


def test_switching_adapters_matches_dedicated_bots(
    packs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serifu.inference import load_chatbot
    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine
    from serifu.serving.heroines import load_heroines

    monkeypatch.setenv("SERIFU_CHARACTERS", str(packs))
    plugins.reset()
    try:
        heroines = load_heroines(["mina", "nomi"], model="tiny-gemma", device="cpu")
        assert (heroines["mina"].adapter_name, heroines["tiny-gemma"].adapter_name) == (
            "mina",
            None,
        )
        expected = {
            cid: _greedy(
                load_chatbot(
                    model="tiny-gemma",
                    adapter=packs / cid / "adapters" / "tiny-gemma"
                    if cid != "tiny-gemma"
                    else None,
                    character=cid if cid != "tiny-gemma" else None,
                    system_prompt=cid != "tiny-gemma",
                    device="cpu",
                ),
                QUERY,
            )
            for cid in ("mina", "nomi", "tiny-gemma")
        }
        assert len(set(expected.values())) == 3  # the adapters really change her replies
        for url in _serve(create_app(Engine(heroines))):
            for cid in ("mina", "nomi", "tiny-gemma", "mina"):
                body = {
                    "model": cid,
                    "messages": [{"role": "user", "content": QUERY}],
                    "max_tokens": 12,
                    "temperature": 0,
                }
                r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
                assert r.json()["choices"][0]["message"]["content"] == expected[cid], cid
    finally:
        plugins.reset()


def test_heroines_share_one_mixed_adapter_batch(
    packs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no per-heroine vocabulary, waiting requests of different heroines decode together."""
    import asyncio

    from serifu.inference import load_chatbot
    from serifu.serving.engine import Engine, Job
    from serifu.serving.heroines import load_heroines

    monkeypatch.setenv("SERIFU_CHARACTERS", str(packs))
    plugins.reset()
    try:
        heroines = load_heroines(
            ["mina", "nomi"], model="tiny-gemma", device="cpu", vocabulary="off"
        )
        cids = ("mina", "nomi", "tiny-gemma")
        expected = {}
        for cid in cids:
            bot = load_chatbot(
                model="tiny-gemma",
                adapter=packs / cid / "adapters" / "tiny-gemma" if cid != "tiny-gemma" else None,
                character=cid if cid != "tiny-gemma" else None,
                system_prompt=cid != "tiny-gemma",
                device="cpu",
                vocabulary="off",
            )
            expected[cid] = _greedy(bot, QUERY)
        assert len(set(expected.values())) == 3

        async def run(mix: bool) -> dict[str, str]:
            engine = Engine(heroines, mix_adapters=mix)
            loop = asyncio.get_running_loop()
            jobs = {
                cid: Job(
                    heroines[cid],
                    [heroines[cid].encoder.encode_prompt(QUERY)],
                    12,
                    {"do_sample": False},
                    [],
                    None,
                    True,
                    loop,
                )
                for cid in cids
            }
            for job in jobs.values():
                engine.submit(job)  # all waiting before the worker starts
            engine.start()
            texts = {}
            for cid, job in jobs.items():
                text = ""
                while (event := await job.events.get()).kind == "delta":
                    text += event.text
                assert event.kind == "done", event
                texts[cid] = text
            await asyncio.to_thread(engine.stop)
            # one mixed batch (stacked adapters), or one batch per heroine (switching)
            assert (engine.batches, engine.batched_rows) == ((1, 3) if mix else (3, 3))
            return texts

        assert asyncio.run(run(True)) == expected
        assert asyncio.run(run(False)) == expected
    finally:
        plugins.reset()
