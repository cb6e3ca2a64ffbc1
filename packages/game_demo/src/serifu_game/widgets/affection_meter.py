"""The affection meter: five hearts, a gauge and her mood."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from serifu_game.affection import mood


def render_meter(value: int, width: int = 20) -> Text:
    """``♥♥♡♡♡ 42`` over a pink gauge, and the mood word."""
    hearts = round(value / 20)
    text = Text()
    text.append("♥" * hearts, "bold #ff5c8a")
    text.append("♡" * (5 - hearts), "#7a5c66")
    text.append(f"  好感度 {value:>3}\n", "bold")
    filled = round(value / 100 * width)
    text.append("█" * filled, "#ff7aa2")
    text.append("░" * (width - filled), "#4a3a44")
    text.append(f"\n気分：{mood(value)}", "italic #ffd6e0")
    return text


class AffectionMeter(Static):
    """Shows ``value`` (0..100); updates itself when it changes."""

    value: reactive[int] = reactive(0)

    def watch_value(self, value: int) -> None:
        self.update(render_meter(value))
