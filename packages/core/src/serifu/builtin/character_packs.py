"""Imported character packs: every ``<id>/card.toml`` folder in ``SERIFU_CHARACTERS``
(default ``~/.config/serifu/characters``), as ``serifu characters import`` writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serifu.hookspecs import hookimpl


@hookimpl
def register_characters(register: Callable[[Any], None]) -> None:
    from serifu.cards.packs import characters_dir, pack_from_folder

    root = characters_dir()
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if (p / "card.toml").is_file()):
        if not folder.name.startswith("."):
            register(pack_from_folder(folder))
