"""Writing a :class:`~serifu.characters.CharacterCard` as card.toml (the subset cards use)."""

from __future__ import annotations

import json
from typing import Any

from serifu.characters import CharacterCard


def toml_value(value: Any) -> str:
    """A TOML literal for a string, int, bool or list of those (JSON escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def card_toml(card: CharacterCard) -> str:
    """card.toml text: the fields that differ from the defaults, then [[questions]]."""
    defaults = CharacterCard(id=card.id, name=card.name)
    lines = ["# Character card (serifu/cast/FORMAT.md, docs/cards.md)."]
    for name in CharacterCard.model_fields:
        value = getattr(card, name)
        if name in ("questions", "interop") or value is None:
            continue
        if name not in ("id", "name") and value == getattr(defaults, name):
            continue
        lines.append(f"{name} = {toml_value(value)}")
    if card.interop:
        lines.append(f"interop_json = {toml_value(json.dumps(card.interop, ensure_ascii=False))}")
    if not card.questions_generated:
        for q in card.questions:
            lines += [
                "",
                "[[questions]]",
                f"q = {toml_value(q.q)}",
                f"answers = {toml_value(q.answers)}",
            ]
    return "\n".join(lines) + "\n"
