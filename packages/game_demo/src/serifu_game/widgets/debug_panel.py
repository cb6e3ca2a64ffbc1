"""The debug panel (F12): backend, rendered prompt, speed and in-character score per reply."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


@dataclass
class ReplyStats:
    """What the panel shows about the last reply."""

    backend: str
    prompt: str
    pieces: int = 0
    seconds: float = 0.0
    in_character: float | None = None
    affection: str = ""

    @property
    def rate(self) -> float:
        return self.pieces / self.seconds if self.seconds > 0 else 0.0


def render_stats(stats: ReplyStats | None, history: list[float | None]) -> Text:
    text = Text()
    if stats is None:
        text.append("まだ返事がありません。\n", "italic")
        return text
    text.append("backend  ", "bold #8fa8c8")
    text.append(f"{stats.backend}\n")
    text.append("速度     ", "bold #8fa8c8")
    text.append(f"{stats.rate:.1f} tok/s（{stats.pieces} pieces, {stats.seconds:.2f} s）\n")
    text.append("らしさ   ", "bold #8fa8c8")
    score = "—" if stats.in_character is None else f"{stats.in_character:.2f}"
    text.append(f"{score}（分類器が彼女のセリフと判定する確率）\n")
    if history:
        scores = " ".join("—" if s is None else f"{s:.2f}" for s in history[-8:])
        text.append("履歴     ", "bold #8fa8c8")
        text.append(scores + "\n")
    if stats.affection:
        text.append("好感度   ", "bold #8fa8c8")
        text.append(stats.affection + "\n")
    text.append("\nprompt / match\n", "bold underline #8fa8c8")
    text.append(stats.prompt, "#c8c8c8")
    return text


class DebugPanel(VerticalScroll, can_focus=False):
    """Hidden until F12; ``show_stats`` refreshes it."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(render_stats(None, []), id="debug-body", markup=False)

    def show_stats(self, stats: ReplyStats | None, history: list[float | None]) -> None:
        self.query_one("#debug-body", Static).update(render_stats(stats, history))
