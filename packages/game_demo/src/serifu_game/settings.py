"""Game settings (backend, model, adapter, text speed, input limit), in ``<data dir>/game/settings.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serifu.fsutil import atomic_write_text
from serifu.paths import data_dir


class GameSettings(BaseModel):
    """What the settings screen edits."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["auto", "llm", "retrieval"] = "auto"
    model: str | None = Field(
        default=None, description="Base model id; None: Serifu's default model."
    )
    adapter: str | None = Field(default=None, description="Adapter folder; None: her shipped one.")
    text_speed: float = Field(
        default=0.04, ge=0.0, le=0.5, description="Seconds per word (retrieval)."
    )
    max_new_tokens: int = Field(default=48, ge=4, le=256)
    max_input_chars: int = Field(
        default=200, ge=10, le=2000, description="Longest line the player can type."
    )


def settings_path() -> Path:
    return data_dir() / "game" / "settings.json"


def load_settings(path: Path | None = None) -> tuple[GameSettings, str | None]:
    """Saved settings, or defaults plus a message saying why the file was not usable."""
    path = path or settings_path()
    if not path.is_file():
        return GameSettings(), None
    try:
        return GameSettings.model_validate(json.loads(path.read_text(encoding="utf-8"))), None
    except (OSError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        return GameSettings(), f"{path}: 設定ファイルを読めなかったため既定値を使います（{first}）"


def save_settings(settings: GameSettings, path: Path | None = None) -> None:
    atomic_write_text(path or settings_path(), settings.model_dump_json(indent=2) + "\n")
