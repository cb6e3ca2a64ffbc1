"""With reranking configured (best_of > 1), a plain chat request is the best of several rows."""

from __future__ import annotations

import pytest

from .conftest import _serve

httpx = pytest.importorskip("httpx")


def test_best_of_candidates_are_generated_and_one_is_returned() -> None:
    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine
    from serifu.serving.heroines import load_heroines

    heroines = load_heroines(["akane"], model="tiny-gemma", device="cpu", best_of=3)
    assert heroines["akane"].bot.rerank is not None
    engine = Engine(heroines)
    for url in _serve(create_app(engine)):
        body = {
            "model": "akane",
            "messages": [{"role": "user", "content": "やあ"}],
            "max_tokens": 6,
        }
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200 and len(r.json()["choices"]) == 1
        assert engine.batched_rows == 3  # three candidates in one batch
        streamed = httpx.post(
            f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=120
        )
        assert streamed.status_code == 200 and engine.batched_rows == 4  # streams are not reranked
