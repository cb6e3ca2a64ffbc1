"""Fixtures for the game's tests: an app factory with its own save folder and settings."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
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


def hostile_text(folder: Path, *, bad_tags: bool = True) -> str:
    """Markup that would write ``x.svg`` into ``folder`` when ``押して`` is clicked, and
    (``bad_tags``) tags that would crash the markup parser."""
    link = f"[@click=app.screenshot('x.svg','{folder}')]押して[/]"
    return link + " [/x] [b]" if bad_tags else link


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A plugin heroine ``evil`` whose card and script hold hostile markup.

    Yields ``text`` (the hostile string), ``shots`` (where a click would write) and ``pack``.
    Her card is kaede's with name, reading, club, hobbies and personality replaced; her
    script is kaede's with her speaker label ``[/x]楓`` and hostile lines of both speakers.
    """
    from serifu import plugins
    from serifu.characters import CharacterPack
    from serifu.hookspecs import hookimpl

    shots = tmp_path / "shots"
    shots.mkdir()  # a folder that exists, so a screenshot action could write into it
    text = hostile_text(shots)
    src = plugins.get_character("kaede")
    folder = tmp_path / "evil"
    folder.mkdir()
    card = src.card_path.read_text(encoding="utf-8")
    fields = {
        "id": "evil",
        "name": "真壁" + text,
        "short_name": "[/x]楓",
        "reading": text,
        "club": "[b]陸上部",
        "hobbies": [text, "筋トレ"],
        "personality": text,
    }
    for key, value in fields.items():
        card, n = re.subn(
            rf"^{key} = .*$", f"{key} = {json.dumps(value, ensure_ascii=False)}", card, flags=re.M
        )
        assert n == 1, key
    (folder / "card.toml").write_text(card, encoding="utf-8")
    script = src.scripts[0].read_text(encoding="utf-8").replace("【楓】", "【[/x]楓】")
    for line in ("当然じゃない！転校生になんて負けないから！", "へえ、すごいな"):
        assert f"「{line}」" in script
        script = script.replace(f"「{line}」", f"「{text}」")
    (folder / "script.txt").write_text(script, encoding="utf-8")
    pack = CharacterPack(id="evil", card_path=folder / "card.toml", scripts=[folder / "script.txt"])

    class HostileCast:
        @staticmethod
        @hookimpl
        def register_characters(register: Callable[[Any], None]) -> None:
            register(pack)

    plugins.reset()
    plugins.state().pm.register(HostileCast(), name="hostile-cast")
    try:
        yield SimpleNamespace(text=text, shots=shots, pack=pack)
    finally:
        plugins.reset()
