"""Fixtures for the game's tests: an app factory with its own save folder and settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from serifu_game.app import SerifuGame

SIZE = (110, 34)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_game(tmp_path: Path) -> Callable[..., SerifuGame]:
    """``make_game(character=..., backend=...)`` -> a SerifuGame saving under ``tmp_path``."""

    def make(**kwargs: Any) -> SerifuGame:
        kwargs.setdefault("backend", "retrieval")
        kwargs.setdefault("text_speed", 0.0)
        kwargs.setdefault("save_folder", tmp_path / "saves")
        kwargs.setdefault("settings_file", tmp_path / "settings.json")
        return SerifuGame(**kwargs)

    return make


async def talk(pilot: Any, text: str) -> None:
    """Type ``text`` key by key (Japanese included), press Enter, wait for her reply."""
    await pilot.press(*text)
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
