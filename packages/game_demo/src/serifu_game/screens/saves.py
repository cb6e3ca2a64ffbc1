"""Save and load slots."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from serifu import plugins
from serifu_game.save import SlotInfo, list_slots


def describe(info: SlotInfo) -> str:
    """One slot as a line of the list."""
    if info.problem:
        return f"スロット{info.slot}  [#ff6b6b]読み込めません[/]  [dim]{info.problem}[/dim]"
    if info.state is None:
        return f"スロット{info.slot}  [dim]― 空き ―[/dim]"
    s = info.state
    reg = plugins.characters().get(s.character)
    name = reg.item.card().name if reg else s.character
    return f"スロット{info.slot}  {name}  {s.day}日目  ♥{s.affection}  [dim]{info.saved_at}[/dim]"


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
            yield Static(f"[b]{title}[/b]　スロットを選んでください", classes="dialog-title")
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
            )
            yield Static("Enterで決定・Escで戻る", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected, "#slots")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int((event.option.id or "slot-1").removeprefix("slot-")))
