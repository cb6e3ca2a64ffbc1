"""The game's state: who, which day, where, how she feels, and what was said."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DAYS = 5
"""In-game days before the ending."""
TURNS_PER_SCENE = 3
"""Player lines per scene (per day)."""
START_AFFECTION = 20

EntryKind = Literal["narration", "player", "heroine", "system", "event"]


class LogEntry(BaseModel):
    """One line of the scene log."""

    model_config = ConfigDict(extra="forbid")
    kind: EntryKind
    text: str
    speaker: str = ""


class GameState(BaseModel):
    """Everything a save slot stores (besides its schema version and time stamp)."""

    model_config = ConfigDict(extra="forbid")
    character: str = Field(description="Character id.")
    day: int = 1
    place: str = "classroom"
    script_scene: str = Field(default="", description="Her script scene the day's opener is from.")
    affection: int = START_AFFECTION
    turns_left: int = TURNS_PER_SCENE
    log: list[LogEntry] = Field(default_factory=list)
    history: list[tuple[str, str]] = Field(
        default_factory=list, description="This scene's (player, her) exchanges, for the model."
    )
    events: list[str] = Field(default_factory=list, description="Ids of events already seen.")
    seed: int = 0

    @property
    def scene_over(self) -> bool:
        return self.turns_left <= 0

    @property
    def last_day(self) -> bool:
        return self.day >= DAYS

    def add(self, kind: EntryKind, text: str, speaker: str = "") -> LogEntry:
        entry = LogEntry(kind=kind, text=text, speaker=speaker)
        self.log.append(entry)
        return entry

    def change_affection(self, delta: int) -> int:
        """Apply ``delta`` within 0..100; returns the new value."""
        self.affection = max(0, min(100, self.affection + delta))
        return self.affection
