"""The sample cast: eight original heroines shipped as package data (``serifu/cast/<id>/``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from serifu.hookspecs import hookimpl


def cast_root() -> Path:
    return Path(str(resources.files("serifu") / "cast"))


def cast_ids() -> list[str]:
    """The sample cast's character ids (folders with a ``card.toml``), sorted."""
    return sorted(p.name for p in cast_root().iterdir() if (p / "card.toml").is_file())


@hookimpl
def register_characters(register: Callable[[Any], None]) -> None:
    from serifu.characters import MIN_SAMPLE_QUESTIONS, CharacterPack

    for folder in sorted(p for p in cast_root().iterdir() if (p / "card.toml").is_file()):
        adapters = {
            a.name: a
            for a in sorted((folder / "adapters").glob("*"))
            if (a / "adapter_config.json").is_file()
        }
        register(
            CharacterPack(
                id=folder.name,
                card_path=folder / "card.toml",
                scripts=[folder / "script.txt"],
                source="script",
                adapters=adapters,
                min_questions=MIN_SAMPLE_QUESTIONS,
            )
        )
