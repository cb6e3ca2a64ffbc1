"""Save slots: one atomic JSON file per slot with a schema version.

A corrupt, foreign, old or edited save is never fatal: :func:`read_slot` raises
:class:`SaveError` with a message the game shows before carrying on. A save is validated
field by field (:class:`~serifu_game.state.GameState`: strict types, affection 0..100, day
1..DAYS, known places and events, bounded text); the message names the first bad fields.
Writes are atomic (temporary file, then rename) and only states that would load again are
written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from serifu.fsutil import atomic_write_text
from serifu.paths import data_dir
from serifu_game.state import RANGES, GameState

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

SCHEMA_VERSION = 1
SLOTS = 3
MAX_BYTES = 2_000_000
"""A save is a few kB; anything far bigger is not one of ours."""


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
    """Write ``state`` to ``slot`` atomically; returns the file.

    :class:`SaveError` (and nothing written) when the state would not load again.
    """
    path = slot_path(slot, folder)
    data = state.model_dump(mode="json")
    try:
        GameState.model_validate(data)
    except ValidationError as exc:
        raise SaveError(f"この状態はセーブできません（{describe_errors(exc)}）。") from None
    payload = {
        "schema_version": SCHEMA_VERSION,
        "saved_at": datetime.now().isoformat(timespec="seconds"),
        "state": data,
    }
    atomic_write_text(path, json.dumps(payload, ensure_ascii=False, indent=1) + "\n")
    return path


def read_slot(slot: int, folder: Path | None = None) -> tuple[GameState, str]:
    """The state saved in ``slot`` and when it was saved; :class:`SaveError` if unusable."""
    path = slot_path(slot, folder)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SaveError(f"スロット{slot}のファイルが大きすぎます（{path}）。")
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SaveError(f"スロット{slot}は空です。") from None
    except (OSError, ValueError, RecursionError) as exc:  # JSON and Unicode errors: ValueError
        raise SaveError(f"スロット{slot}のセーブデータが壊れています（{path}: {exc}）。") from None
    if not isinstance(payload, dict):
        raise SaveError(f"スロット{slot}はセーブデータではありません（{path}）。")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SaveError(
            f"スロット{slot}は別の版のセーブデータです（schema_version={repr(version)[:20]}、"
            f"この版は{SCHEMA_VERSION}）。読み込めません（{path}）。"
        )
    try:
        state = GameState.model_validate(payload.get("state"))
    except ValidationError as exc:
        raise SaveError(
            f"スロット{slot}のセーブデータが不正です（{path}：{describe_errors(exc)}）。"
        ) from None
    saved_at = payload.get("saved_at", "")
    return state, saved_at[:200] if isinstance(saved_at, str) else ""


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """The first ``limit`` problems of a save, in words: ``affection = 99999 は 0〜100 の範囲外``."""
    parts = [_describe(err) for err in exc.errors()[:limit]]
    more = len(exc.errors()) - limit
    return "、".join(parts) + (f" ほか{more}件" if more > 0 else "")


def _describe(err: ErrorDetails) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "state"
    value = repr(err.get("input"))
    value = value if len(value) <= 40 else value[:37] + "..."
    kind = err["type"]
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        field = str(err["loc"][-1])
        if field in RANGES:
            lo, hi = RANGES[field]
            return f"{loc} = {value} は {lo}〜{hi} の範囲外"
        return f"{loc} = {value} は範囲外"
    if kind == "missing":
        return f"{loc} がありません"
    if kind == "extra_forbidden":
        return f"{loc} は知らない項目です"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{loc} の型が違います（{value}）"
    if "too_long" in kind:
        return f"{loc} が長すぎます"
    return f"{loc}：{err['msg']}"


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
