"""``serifu play --server``: the game's http backend against a live server, and the real app."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from serifu.errors import SerifuError

pytest.importorskip("textual")
from serifu_game.backends.http import HttpBackend, server_game


def test_backend_prepares_streams_and_cancels(live) -> None:
    backend = HttpBackend(f"{live.url}/v1", "akane", max_new_tokens=12)
    assert not backend.ready
    backend.prepare()
    assert backend.ready
    pieces = list(backend.stream("こんにちは", [("やあ", "おはよう")], threading.Event()))
    assert pieces and "\n" not in "".join(pieces)
    cancel = threading.Event()
    cancel.set()
    assert list(backend.stream("こんにちは", [], cancel)) == []
    assert '"content": "やあ"' in backend.debug_info("こんにちは", [("やあ", "おはよう")])


def test_backend_errors_are_clear(live) -> None:
    with pytest.raises(SerifuError, match="does not serve 'nobody'"):
        HttpBackend(live.url, "nobody").prepare()
    with pytest.raises(SerifuError, match="cannot reach the server"):
        HttpBackend("http://127.0.0.1:9", "akane", timeout=5).prepare()


def test_backend_sends_the_api_key(locked) -> None:
    with pytest.raises(SerifuError, match="answered 401"):
        HttpBackend(locked.url, "akane").prepare()
    HttpBackend(locked.url, "akane", api_key="test-key").prepare()


@pytest.mark.anyio
async def test_the_game_talks_through_the_server(live, tmp_path: Path) -> None:
    from serifu_game.screens.scene import SceneScreen

    game = server_game(live.url)(
        character="rei",
        text_speed=0.0,
        save_folder=tmp_path / "saves",
        settings_file=tmp_path / "settings.json",
        score_replies=False,
    )
    async with game.run_test(size=(110, 34)) as pilot:
        assert game.choice is not None and game.choice.kind == "http"
        assert isinstance(game.backend, HttpBackend)
        await pilot.press(*"こんにちは", "enter")
        await game.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(game.screen, SceneScreen) and not game.screen.busy
        assert game.state is not None and game.state.log[-1].kind == "heroine"
        assert game.state.history and game.state.history[0][0] == "こんにちは"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
