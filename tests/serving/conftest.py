"""A live ``serifu serve`` app on 127.0.0.1 (ephemeral port) with tiny-gemma and two heroines."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

API_KEY = "test-key"


@dataclass
class Live:
    url: str
    engine: Any
    heroines: dict[str, Any]


def save_random_adapters(
    root: Path, names: list[str], *, seed: int, alpha: int, alpha_step: int
) -> dict[str, Path]:
    """LoRA adapters on tiny-gemma with random (non-zero) weights, saved as training saves
    them; adapter ``i`` has rank ``2 + i`` and alpha ``alpha + alpha_step * i`` (different
    ranks and scalings)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from serifu.modeling import load_model, resolve_base

    base = resolve_base("tiny-gemma")
    paths = {}
    for i, name in enumerate(names):
        torch.manual_seed(seed + i)
        lm = load_model(base, quantize=False, device="cpu")
        config = LoraConfig(
            r=2 + i,
            lora_alpha=alpha + alpha_step * i,
            target_modules=list(base.lora_targets),
            init_lora_weights=False,
        )
        get_peft_model(lm, config).save_pretrained(str(root / name))
        paths[name] = root / name
    return paths


@pytest.fixture(scope="session")
def heroines() -> dict[str, Any]:
    pytest.importorskip("fastapi")
    from serifu.serving.heroines import load_heroines

    return load_heroines(["akane", "rei"], model="tiny-gemma", device="cpu", quantize=False)


def _serve(app: Any) -> Iterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:  # waiting for start-up, not a timing assertion
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


@pytest.fixture(scope="module")
def live(heroines: dict[str, Any]) -> Iterator[Live]:
    from serifu.serving.app import ServerLimits, create_app
    from serifu.serving.engine import Engine

    engine = Engine(heroines, max_queue=64, max_batch=8)
    app = create_app(engine, limits=ServerLimits(max_tokens=64, max_body=64 * 1024))
    for url in _serve(app):
        yield Live(url, engine, heroines)


@pytest.fixture(scope="module")
def locked(heroines: dict[str, Any]) -> Iterator[Live]:
    """The same heroines behind an API key and one allowed CORS origin."""
    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine

    engine = Engine(heroines)
    app = create_app(engine, api_key=API_KEY, cors_origins=["http://localhost:5173"])
    for url in _serve(app):
        yield Live(url, engine, heroines)
