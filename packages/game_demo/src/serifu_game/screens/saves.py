"""Save and load slots."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from serifu import plugins
from serifu.errors import SerifuError
from serifu_game.plain import plain
from serifu_game.save import SlotInfo, list_slots


def describe(info: SlotInfo) -> Content:
    """One slot as a line of the list (names, dates and problems verbatim, never markup)."""
    slot = f"スロット{info.slot}  "
    if info.problem:
        return plain(slot, ("読み込めません", "#ff6b6b"), "  ", (info.problem, "dim"))
    if info.state is None:
        return plain(slot, ("― 空き ―", "dim"))
    s = info.state
    reg = plugins.characters().get(s.character)
    try:
        name = reg.item.card().name if reg else s.character
    except SerifuError:  # her card broke since the save was made
        name = s.character
    return plain(slot, f"{name}  {s.day}日目  ♥{s.affection}  ", (info.saved_at, "dim"))


class SaveLoadScreen(ModalScreen[int | None]):
    """Returns the chosen slot (None with Esc)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "戻る")]

    def __init__(self, mode: str, folder: Path | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.folder = folder

    def compose(self) -> ComposeResult:
        slots = list_slots(self.folder)
        title = "セーブ" if self.mode == "save" else "ロード"
        with Vertical(id="slots-box", classes="dialog"):
            yield Static(
                plain((title, "bold"), "　スロットを選んでください"),
                classes="dialog-title",
                markup=False,
            )
            yield OptionList(
                *[
                    Option(
                        describe(info),
                        id=f"slot-{info.slot}",
                        disabled=self.mode == "load" and info.empty,
                    )
                    for info in slots
                ],
                id="slots",
                markup=False,
            )
            yield Static("Enterで決定・Escで戻る", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#slots")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int((event.option.id or "slot-1").removeprefix("slot-")))
