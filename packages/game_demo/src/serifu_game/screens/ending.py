"""The ending: which one depends on her affection."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Center, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Static

from serifu_game import story
from serifu_game.affection import mood
from serifu_game.plain import plain
from serifu_game.widgets.affection_meter import render_meter
from serifu_game.widgets.portrait import Portrait

if TYPE_CHECKING:
    from serifu_game.app import SerifuGame


class EndingScreen(Screen[None]):
    """Shows the ending for the final affection."""

    def compose(self) -> ComposeResult:
        game = cast("SerifuGame", self.app)
        assert game.state is not None and game.pack is not None
        card = game.pack.card()
        end = story.ending(game.state.affection, card)
        self.ending = end
        with Vertical(id="ending"):
            yield Static(
                plain(end.title), id="ending-title", classes=f"ending-{end.id}", markup=False
            )
            with Horizontal(id="ending-body"):
                yield Portrait(card.id, mood=mood(game.state.affection), id="ending-portrait")
                with Vertical(id="ending-text"):
                    yield Static(plain(end.text), id="ending-story", markup=False)
                    yield Static(
                        render_meter(game.state.affection), id="ending-meter", markup=False
                    )
            with Center(), Horizontal(id="ending-buttons"):
                yield Button("タイトルへ", id="to-title", variant="primary")
                yield Button("終了", id="quit")
        yield Footer()

    @on(Button.Pressed, "#to-title")
    def _to_title(self) -> None:
        from serifu_game.screens.title import TitleScreen

        self.app.switch_screen(TitleScreen())

    @on(Button.Pressed, "#quit")
    def _quit(self) -> None:
        self.app.exit()
