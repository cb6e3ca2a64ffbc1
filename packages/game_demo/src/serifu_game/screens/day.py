"""Choosing where to spend the day."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from serifu_game import story
from serifu_game.plain import plain

if TYPE_CHECKING:
    from serifu_game.app import SerifuGame


class DayScreen(ModalScreen[str | None]):
    """Returns the chosen place id (None with Esc)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "戻る")]

    def compose(self) -> ComposeResult:
        game = cast("SerifuGame", self.app)
        assert game.state is not None and game.pack is not None
        card = game.pack.card()
        with Vertical(id="day-box", classes="dialog"):
            yield Static(
                plain((f"{game.state.day + 1}日目", "bold"), "　今日はどこへ行こう？"),
                classes="dialog-title",
                markup=False,
            )
            options = []
            for place in story.PLACES:
                hint = (
                    (f"  ♥ {card.short_name}の好きな場所かも", "#ff7aa2")
                    if story.place_bonus(place, card)
                    else ""
                )
                options.append(Option(plain(f"{place.icon}  {place.name}", hint), id=place.id))
            yield OptionList(*options, id="places", markup=False)
            yield Static("↑↓で選んでEnter", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#places")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
