"""Snapshot tests at a fixed size (textual==8.2.8 is pinned; update with --snapshot-update)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.widgets import Input

from serifu_game.app import SerifuGame

SNAP_SIZE = (110, 34)


async def _steady(pilot: Any) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


def test_title_screen(snap_compare: Any, make_game: Callable[..., SerifuGame]) -> None:
    assert snap_compare(make_game(), terminal_size=SNAP_SIZE, run_before=_steady)


def test_scene_after_a_reply(snap_compare: Any, make_game: Callable[..., SerifuGame]) -> None:
    async def talk(pilot: Any) -> None:
        await _steady(pilot)
        pilot.app.screen.query_one("#say", Input).value = "カツ丼、好きなんだって？"
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        screen = pilot.app.screen
        screen.stats.seconds = 0.5  # the only measured (so varying) number on screen
        await pilot.press("f12")
        await pilot.pause()

    app = make_game(character="kaede", seed=7)
    assert snap_compare(app, terminal_size=SNAP_SIZE, run_before=talk)
