"""Malformed requests get OpenAI-style 4xx JSON, never a 500; keys, CORS, queue limits."""

from __future__ import annotations

import asyncio
import time

import pytest

httpx = pytest.importorskip("httpx")

from .conftest import API_KEY  # noqa: E402

MSG = [{"role": "user", "content": "やあ"}]
CASES = [
    ("bad JSON", b'{"model": "akane", "messages": [', 400, "not valid JSON"),
    ("not UTF-8", b'{"model": "\xff"}', 400, "not valid JSON"),
    ("not an object", b"[1, 2]", 400, "must be a JSON object"),
    ("deep nesting", b"[" * 50_000 + b"]" * 50_000, 413, "over 65536 bytes"),
    (
        "nesting",
        b'{"model": "akane", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        400,
        "not valid JSON",
    ),
    ("huge int", b'{"model": "akane", "n": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    ("no messages", {"model": "akane"}, 400, "messages: Field required"),
    ("empty messages", {"model": "akane", "messages": []}, 400, "messages"),
    ("wrong type", {"model": "akane", "messages": MSG, "max_tokens": "many"}, 400, "max_tokens"),
    ("temperature", {"model": "akane", "messages": MSG, "temperature": 5}, 400, "temperature"),
    ("n too big", {"model": "akane", "messages": MSG, "n": 100}, 400, "n: "),
    ("stop not str", {"model": "akane", "messages": MSG, "stop": 3}, 400, "stop"),
    ("unknown model", {"model": "nobody", "messages": MSG}, 404, "does not exist"),
    ("max_tokens", {"model": "akane", "messages": MSG, "max_tokens": 65}, 400, "limit of 64"),
    ("bias key", {"model": "akane", "messages": MSG, "logit_bias": {"abc": 1}}, 400, "token ids"),
    (
        "bias id",
        {"model": "akane", "messages": MSG, "logit_bias": {"99999999": 1}},
        400,
        "outside the vocabulary",
    ),
    (
        "bias value",
        {"model": "akane", "messages": MSG, "logit_bias": {"5": 1000}},
        400,
        "between -100 and 100",
    ),
    (
        "last is assistant",
        {"model": "akane", "messages": [*MSG, {"role": "assistant", "content": "x"}]},
        400,
        "role 'user'",
    ),
    ("bad role", {"model": "akane", "messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
    (
        "image part",
        {"model": "akane", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        400,
        "only text",
    ),
    (
        "too long",
        {"model": "akane", "messages": [{"role": "user", "content": "あ" * 5000}]},
        400,
        "characters long",
    ),
    (
        "body too big",
        {"model": "akane", "messages": [{"role": "user", "content": "x" * 70_000}]},
        413,
        "over 65536 bytes",
    ),
]


@pytest.mark.parametrize(("name", "body", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_chat_requests(live, name: str, body, status: int, message: str) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{live.url}/v1/chat/completions", timeout=60, **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"
    assert "Traceback" not in r.text


def test_malformed_completion_requests(live) -> None:
    for body, message in [
        ({"model": "akane"}, "prompt: Field required"),
        ({"model": "akane", "prompt": []}, "prompt is empty"),
        ({"model": "akane", "prompt": 5}, "prompt"),
        ({"model": "akane", "prompt": "x" * 30_000, "max_tokens": 64}, "context"),
    ]:
        r = httpx.post(f"{live.url}/v1/completions", json=body, timeout=60)
        assert r.status_code == 400 and message in r.json()["error"]["message"], r.text


def test_wrong_method_and_route_are_json(live) -> None:
    r = httpx.get(f"{live.url}/v1/chat/completions")
    assert r.status_code == 405 and "error" in r.json()
    r = httpx.get(f"{live.url}/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()


def test_api_key_is_required_when_set(locked) -> None:
    r = httpx.get(f"{locked.url}/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(f"{locked.url}/v1/models", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = httpx.get(f"{locked.url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "akane"


def test_cors_allows_only_the_given_origin(locked) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"{locked.url}/v1/chat/completions",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )

    assert (
        preflight("http://localhost:5173").headers["access-control-allow-origin"]
        == "http://localhost:5173"
    )
    assert "access-control-allow-origin" not in preflight("http://evil.example").headers


def test_a_dropped_stream_cancels_its_generation(locked) -> None:
    engine = locked.engine
    before = engine.cancelled_batches
    [token] = locked.heroines["tiny-gemma"].bot.tokenizer("あ", add_special_tokens=False)[
        "input_ids"
    ]
    body = {
        "model": "tiny-gemma",
        "prompt": "昔々",
        "max_tokens": 512,
        "temperature": 0,
        "logit_bias": {str(token): 100},  # one ordinary token forever: never stops by itself
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.stream(
        "POST", f"{locked.url}/v1/completions", json=body, headers=headers, timeout=60
    ) as r:
        assert r.status_code == 200
        first = next(line for line in r.iter_lines() if line.startswith("data:"))
        assert '"text": "あ' in first
    deadline = time.monotonic() + 120  # waiting for the worker, not asserting a duration
    while (engine.busy or engine.cancelled_batches == before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.cancelled_batches == before + 1


def _job(heroine, rows: int):
    from serifu.serving.engine import Job

    loop = asyncio.new_event_loop()
    return Job(heroine, [[1, 2]] * rows, 4, {}, [], None, True, loop), loop


def test_full_queue_answers_429_and_shutdown_503(heroines) -> None:
    from serifu.serving.engine import Engine
    from serifu.serving.protocol import ApiError

    engine = Engine(heroines, max_queue=3)  # not started: jobs stay queued
    first, loop = _job(heroines["akane"], 2)
    engine.submit(first)
    with pytest.raises(ApiError) as full:
        engine.submit(_job(heroines["akane"], 2)[0])
    assert full.value.status == 429 and full.value.headers["Retry-After"] == "1"
    engine.stop()
    loop.run_until_complete(asyncio.sleep(0))  # deliver the worker's event
    event = first.events.get_nowait()
    assert event.kind == "error" and event.error.status == 503
    with pytest.raises(ApiError) as closing:
        engine.submit(_job(heroines["akane"], 1)[0])
    assert closing.value.status == 503 and "Retry-After" in closing.value.headers
    loop.close()


def test_waiting_requests_of_one_heroine_share_a_batch(heroines) -> None:
    from serifu.serving.engine import Engine

    engine = Engine(heroines, max_batch=4)
    a, loop = _job(heroines["akane"], 1)
    b = _job(heroines["akane"], 2)[0]
    c = _job(heroines["rei"], 1)[0]  # another heroine: its own batch
    seeded = _job(heroines["akane"], 1)[0]
    seeded.seed = 1  # seeded: alone
    too_many = _job(heroines["akane"], 2)[0]
    for job in (a, b, c, seeded, too_many):
        engine.submit(job)
    take = lambda: engine._take(engine._next())  # noqa: E731  (the batch path's grouping)
    assert take() == [a, b]
    assert take() == [c]
    assert take() == [seeded]
    assert take() == [too_many]
    loop.close()
