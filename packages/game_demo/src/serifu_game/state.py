"""The game's state: who, which day, where, how she feels, and what was said.

It is what a save slot stores, so every field is validated when a save is read: types are
strict (``"3"`` or ``3.0`` is not a day), numbers stay in their real ranges, places and
events must exist, and text has a length bound. The rules that change it live in
:mod:`serifu_game.session`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from serifu.kinds import ID_PATTERN
from serifu_game.story import EVENTS, PLACES

DAYS = 5
"""In-game days before the ending."""
TURNS_PER_SCENE = 3
"""Player lines per scene (per day)."""
START_AFFECTION = 20
AFFECTION_RANGE = (0, 100)
RANGES: dict[str, tuple[int, int]] = {
    "day": (1, DAYS),
    "affection": AFFECTION_RANGE,
    "turns_left": (0, TURNS_PER_SCENE),
}
"""Allowed (inclusive) range of each numeric field, for validation and its messages."""
MAX_TEXT = 4000
"""Longest text of one log entry."""
MAX_LOG = 200
"""Most log entries (the log holds one day's scene)."""

EntryKind = Literal["narration", "player", "heroine", "system", "event"]
LogText = Annotated[str, Field(strict=True, max_length=MAX_TEXT)]
Name = Annotated[str, Field(strict=True, max_length=200)]


def _ranged(name: str, default: int, description: str) -> int:
    lo, hi = RANGES[name]
    return Field(default=default, ge=lo, le=hi, strict=True, description=description)


class LogEntry(BaseModel):
    """One line of the scene log."""

    model_config = ConfigDict(extra="forbid")
    kind: EntryKind
    text: LogText
    speaker: Name = ""


class GameState(BaseModel):
    """Everything a save slot stores (besides its schema version and time stamp)."""

    model_config = ConfigDict(extra="forbid")
    character: Annotated[str, Field(strict=True, max_length=64, pattern=ID_PATTERN.pattern)]
    day: int = _ranged("day", 1, "Day of the story, 1..DAYS.")
    place: Name = "classroom"
    script_scene: Name = Field(default="", description="Her script scene the day's opener is from.")
    affection: int = _ranged("affection", START_AFFECTION, "Her affection, 0..100.")
    turns_left: int = _ranged("turns_left", TURNS_PER_SCENE, "Player lines left today.")
    log: list[LogEntry] = Field(default_factory=list, max_length=MAX_LOG)
    history: list[tuple[StrictStr, StrictStr]] = Field(
        default_factory=list,
        max_length=TURNS_PER_SCENE,
        description="This scene's (player, her) exchanges, for the model.",
    )
    events: list[StrictStr] = Field(default_factory=list, description="Ids of events already seen.")
    seed: int = Field(default=0, strict=True, ge=-(2**63), lt=2**63)

    @field_validator("place")
    @classmethod
    def _known_place(cls, v: str) -> str:
        if v not in {p.id for p in PLACES}:
            raise ValueError(f"unknown place {v!r} (known: {', '.join(p.id for p in PLACES)})")
        return v

    @field_validator("events")
    @classmethod
    def _known_events(cls, v: list[str]) -> list[str]:
        known = [e.id for e in EVENTS]
        unknown = [e for e in v if e not in known]
        if unknown or len(set(v)) != len(v):
            raise ValueError(f"events must be distinct ids of {', '.join(known)}")
        return v

    @property
    def scene_over(self) -> bool:
        return self.turns_left <= 0

    @property
    def last_day(self) -> bool:
        return self.day >= DAYS

    def add(self, kind: EntryKind, text: str, speaker: str = "") -> LogEntry:
        """Append a log entry (text cut to :data:`MAX_TEXT`; the oldest go past :data:`MAX_LOG`)."""
        entry = LogEntry(kind=kind, text=text[:MAX_TEXT], speaker=speaker[:200])
        self.log.append(entry)
        del self.log[:-MAX_LOG]
        return entry

    def change_affection(self, delta: int) -> int:
        """Apply ``delta`` within 0..100; returns the new value."""
        lo, hi = AFFECTION_RANGE
        self.affection = max(lo, min(hi, self.affection + delta))
        return self.affection
