"""Save slots: one atomic JSON file per slot with a schema version.

A corrupt, foreign or old save is never fatal: :func:`read_slot` raises
:class:`SaveError` with a message the game shows before carrying on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from serifu.fsutil import atomic_write_text
from serifu.paths import data_dir
from serifu_game.state import GameState

SCHEMA_VERSION = 1
SLOTS = 3


class SaveError(Exception):
    """A save slot that cannot be loaded, with a message fit to show in the game."""


@dataclass(frozen=True)
class SlotInfo:
    """What the save/load screen shows for a slot."""

    slot: int
    path: Path
    state: GameState | None
    saved_at: str = ""
    problem: str = ""

    @property
    def empty(self) -> bool:
        return self.state is None and not self.problem


def save_dir() -> Path:
    return data_dir() / "saves"


def slot_path(slot: int, folder: Path | None = None) -> Path:
    return (folder or save_dir()) / f"slot{slot}.json"


def write_slot(slot: int, state: GameState, folder: Path | None = None) -> Path:
    """Write ``state`` to ``slot`` atomically; returns the file."""
    path = slot_path(slot, folder)
    payload = {
        "schema_version": SCHEMA_VERSION,
        "saved_at": datetime.now().isoformat(timespec="seconds"),
        "state": state.model_dump(mode="json"),
    }
    atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=1) + "\n")
    return path


def read_slot(slot: int, folder: Path | None = None) -> tuple[GameState, str]:
    """The state saved in ``slot`` and when it was saved; :class:`SaveError` if unusable."""
    path = slot_path(slot, folder)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SaveError(f"スロット{slot}は空です。") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SaveError(f"スロット{slot}のセーブデータが壊れています（{path}: {exc}）。") from None
    if not isinstance(payload, dict):
        raise SaveError(f"スロット{slot}はセーブデータではありません（{path}）。")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SaveError(
            f"スロット{slot}は別の版のセーブデータです（schema_version={version!r}、"
            f"この版は{SCHEMA_VERSION}）。読み込めません（{path}）。"
        )
    try:
        state = GameState.model_validate(payload.get("state"))
    except ValidationError as exc:
        first = str(exc).splitlines()[0]
        raise SaveError(f"スロット{slot}のセーブデータが不正です（{path}: {first}）。") from None
    return state, str(payload.get("saved_at", ""))


def list_slots(folder: Path | None = None) -> list[SlotInfo]:
    """Every slot, with its state, or the problem that keeps it from loading."""
    infos = []
    for slot in range(1, SLOTS + 1):
        path = slot_path(slot, folder)
        if not path.exists():
            infos.append(SlotInfo(slot, path, None))
            continue
        try:
            state, saved_at = read_slot(slot, folder)
            infos.append(SlotInfo(slot, path, state, saved_at))
        except SaveError as exc:
            infos.append(SlotInfo(slot, path, None, problem=str(exc)))
    return infos
