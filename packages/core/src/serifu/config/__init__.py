"""Project configuration: one TOML file (``serifu.toml``) plus CLI overrides.

Every model forbids unknown keys, so a typo is an error rather than a silent default.
Sub-configs live next to this module, one per concern (data, train, eval).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serifu.config.data import DataConfig
from serifu.config.eval import EvalConfig
from serifu.config.train import TrainConfig
from serifu.errors import SerifuError

DEFAULT_CONFIG_NAME = "serifu.toml"


class SerifuConfig(BaseModel):
    """The root of ``serifu.toml``."""

    model_config = ConfigDict(extra="forbid")
    data: DataConfig = Field(default_factory=DataConfig, description="Dataset building.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="QLoRA training.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation.")


def format_validation_error(exc: ValidationError) -> str:
    """One paragraph: each bad key path with what is wrong and what is allowed."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        kind = err["type"]
        if kind == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            msg = err["msg"]
            allowed = err.get("ctx", {}).get("expected")
            detail = f" (allowed: {allowed})" if allowed else ""
            parts.append(f"'{loc}': {msg}{detail}, got {err.get('input')!r}")
    return "invalid configuration: " + "; ".join(parts) + "."


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.path=value``; the value is read as TOML (so 3, 1e-4, true, "x", [..])."""
    if "=" not in text:
        raise SerifuError(f"--set expects KEY=VALUE (e.g. train.epochs=2), got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def _apply(raw: dict[str, Any], path: list[str], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SerifuError(f"--set {'.'.join(path)}: '{part}' is not a section")
    node[path[-1]] = value


def load_config(
    path: Path | None = None, overrides: list[str] | None = None, *, search_cwd: bool = True
) -> SerifuConfig:
    """Load ``path`` (or ``./serifu.toml`` when present), apply ``KEY=VALUE`` overrides, validate."""
    raw: dict[str, Any] = {}
    source = "command-line overrides" if overrides else "defaults"
    if path is None and search_cwd and Path(DEFAULT_CONFIG_NAME).is_file():
        path = Path(DEFAULT_CONFIG_NAME)
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            if path.exists() and not path.is_file():  # a folder, /dev/zero …: never read it
                raise SerifuError("the config must be a TOML file", path=path)
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SerifuError("config file not found", path=path) from None
        except UnicodeDecodeError as exc:
            raise SerifuError(
                f"config file is not UTF-8 (byte offset {exc.start})", path=path
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SerifuError(f"not valid TOML: {exc}", path=path) from None
        except OSError as exc:  # a path through a file, no permission …
            raise SerifuError(
                f"cannot read the config ({exc.strerror or exc})", path=path
            ) from None
    for item in overrides or []:
        key, value = parse_override(item)
        _apply(raw, key, value)
    try:
        return SerifuConfig.model_validate(raw)
    except ValidationError as exc:
        raise SerifuError(format_validation_error(exc), path=source) from None


def config_schema() -> str:
    """The JSON schema of ``serifu.toml``."""
    return json.dumps(SerifuConfig.model_json_schema(), ensure_ascii=False, indent=2)
