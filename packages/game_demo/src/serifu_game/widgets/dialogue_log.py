"""The scene log: narration, the player's lines and hers (hers can stream in piece by piece)."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from serifu_game.state import LogEntry


def render_entry(entry: LogEntry, color: str = "#ff9ebb") -> Text:
    """One log line as rich text."""
    if entry.kind == "narration":
        return Text(entry.text, style="italic #b8b8d0")
    if entry.kind == "event":
        return Text(f"✦ {entry.text}", style="bold #ffd166")
    if entry.kind == "system":
        return Text(f"※ {entry.text}", style="#8fa8c8")
    text = Text()
    if entry.kind == "player":
        text.append("あなた ", "bold #7ec8e3")
        text.append(entry.text, "#e6f4fa")
        return text
    text.append(f"{entry.speaker}\n", f"bold {color}")
    text.append(f"「{entry.text}」", "#fff0f5")
    return text


class EntryView(Static):
    """One entry of the log; ``append`` extends a streaming reply."""

    def __init__(self, entry: LogEntry, color: str) -> None:
        super().__init__(render_entry(entry, color), classes=f"entry {entry.kind}")
        self.entry = entry
        self.color = color

    def append(self, piece: str) -> None:
        self.entry.text += piece
        self.update(render_entry(self.entry, self.color))

    def refresh_entry(self) -> None:
        self.update(render_entry(self.entry, self.color))


class DialogueLog(VerticalScroll, can_focus=False):
    """A scrolling list of :class:`EntryView`, newest at the bottom."""

    def __init__(self, *, color: str = "#ff9ebb", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.color = color

    def add(self, entry: LogEntry) -> EntryView:
        view = EntryView(entry, self.color)
        self.mount(view)
        self.scroll_end(animate=False)
        return view

    def reset(self, entries: list[LogEntry]) -> None:
        self.remove_children()
        self.mount_all([EntryView(e, self.color) for e in entries])
        self.scroll_end(animate=False)

    def follow(self) -> None:
        self.scroll_end(animate=False)
