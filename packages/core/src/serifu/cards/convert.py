"""Character Card V2/V3 ``data`` <-> Serifu's :class:`~serifu.characters.CharacterCard`.

Standard fields map one to one. Serifu-only fields (the school profile, speech notes,
profile questions, adapters) travel under ``extensions.serifu``; the lorebook, other
extensions and unknown V3 fields are kept in ``card.interop`` and written back unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from serifu.characters import FACT_LABELS, CharacterCard, system_prompt
from serifu.errors import SerifuError
from serifu.kinds import ID_PATTERN

TEXT_FIELDS = (
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
)
LIST_FIELDS = ("alternate_greetings", "tags")
V3_ONLY = ("nickname", "group_only_greetings", "assets", "creator_notes_multilingual", "source")
KNOWN = {"name", *TEXT_FIELDS, *LIST_FIELDS, "character_book", "extensions", *V3_ONLY}
DEFAULT_ICON = {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}
PROFILE_KEYS = (
    "short_name",
    *FACT_LABELS,
    "speech_type",
    "speech_notes",
    "protagonist",
)


def slug(name: str) -> str:
    """An id from an ascii name ('' when the name has no ascii letters or digits)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-.")


def card_from_data(data: dict[str, Any], card_id: str | None, where: str) -> CharacterCard:
    """A Serifu card from a V1/V2/V3 ``data`` object (``where`` names the file in errors)."""
    data = dict(data)
    extensions = data.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise SerifuError("the card's extensions is not an object", path=where)
    extensions = dict(extensions)
    serifu = extensions.pop("serifu", None) or {}
    serifu = serifu if isinstance(serifu, dict) else {}
    generated = set(serifu.get("generated") or [])
    profile = serifu.get("profile") or {}
    name = _text(data, "name", where).strip()
    card_id = card_id or profile.get("id") or slug(name)
    if not card_id:
        raise SerifuError(
            f"cannot make an id from the name {name!r}; give one with --id (lowercase ascii)",
            path=where,
        )
    if not ID_PATTERN.match(card_id):
        raise SerifuError(f"invalid id {card_id!r} (lowercase letters, digits, '.', '_', '-')")
    fields: dict[str, Any] = {"id": card_id, "name": name}
    for key in TEXT_FIELDS:
        if key not in generated:
            fields[key] = _text(data, key, where)
    for key in LIST_FIELDS:
        fields[key] = _strings(data, key, where)
    if data.get("nickname"):
        fields["short_name"] = _text(data, "nickname", where)
    for key in PROFILE_KEYS:
        if key in profile:
            fields[key] = profile[key]
    if "questions" in profile:
        fields["questions"] = profile["questions"]
    interop: dict[str, Any] = {}
    if data.get("character_book") and "character_book" not in generated:
        interop["character_book"] = data["character_book"]
    if extensions:
        interop["extensions"] = extensions
    other = {
        k: v
        for k, v in data.items()
        if (k not in KNOWN or k in V3_ONLY[1:]) and v not in ([], "", None, [DEFAULT_ICON])
    }
    if other:
        interop["data"] = other
    fields["interop"] = interop
    from pydantic import ValidationError

    try:
        return CharacterCard.model_validate(fields)
    except ValidationError as exc:
        from serifu.config import format_validation_error

        raise SerifuError(format_validation_error(exc), path=where) from None


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SerifuError(f"the card's {key!r} is not a string", path=where)
    return value


def _strings(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SerifuError(f"the card's {key!r} is not a list of strings", path=where)
    return list(value)


def data_from_card(
    card: CharacterCard,
    *,
    version: int,
    example: str = "",
    serifu_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The V2 or V3 card object (``spec``, ``spec_version``, ``data``) for ``card``."""
    generated: list[str] = []
    data: dict[str, Any] = {"name": card.name}
    for key in TEXT_FIELDS:
        data[key] = getattr(card, key)
    if not card.description and card.facts():  # front ends show the profile as description
        data["description"] = system_prompt(card)
        generated.append("description")
    if not card.mes_example and example:
        data["mes_example"] = example
        generated.append("mes_example")
    for key in LIST_FIELDS:
        data[key] = list(getattr(card, key))
    book = card.interop.get("character_book")
    if book is None and card.facts():
        book = _facts_book(card)
        generated.append("character_book")
    if book is not None:
        data["character_book"] = book
    profile: dict[str, Any] = {"id": card.id}
    defaults = CharacterCard(id=card.id, name=card.name)
    for key in PROFILE_KEYS:
        value = getattr(card, key)
        if value != getattr(defaults, key) and not (key == "short_name" and value == card.name):
            profile[key] = value
    if not card.questions_generated:
        profile["questions"] = [q.model_dump() for q in card.questions]
    extensions = dict(card.interop.get("extensions") or {})
    extensions["serifu"] = {"profile": profile, "generated": generated, **(serifu_extra or {})}
    data["extensions"] = extensions
    if version == 3:
        data["nickname"] = card.short_name if card.short_name != card.name else ""
        for key, value in (card.interop.get("data") or {}).items():
            data.setdefault(key, value)
        data.setdefault("group_only_greetings", [])
        data.setdefault("assets", [dict(DEFAULT_ICON)])
        return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def _facts_book(card: CharacterCard) -> dict[str, Any]:
    """A lorebook with one constant entry per profile fact (so other front ends see them)."""
    entries = [
        {
            "keys": [label],
            "content": f"{card.short_name}の{label}：{value}",
            "extensions": {},
            "enabled": True,
            "insertion_order": i,
            "name": label,
            "constant": False,
        }
        for i, (key, label, value) in enumerate(card.facts())
        if not key.startswith("lore:")
    ]
    return {"name": f"{card.name}のプロフィール", "extensions": {}, "entries": entries}


def example_script(card: CharacterCard, mes_example: str) -> str:
    """``mes_example`` (``<START>`` blocks of ``{{user}}:``/``{{char}}:`` lines) as a script."""
    out: list[str] = []
    blocks = re.split(r"(?im)^\s*<START>\s*$", mes_example)
    for number, block in enumerate(blocks):
        lines = _turns(block)
        if not lines:
            continue
        out.append(f"[scene] 例{number}")
        for speaker, text in lines:
            label = card.short_name if speaker == "char" else card.protagonist
            text = card.macros(text).replace("「", "『").replace("」", "』")
            out.append(f"【{label}】「{text}」")
    return "\n".join(out) + "\n" if out else ""


_TURN = re.compile(r"^\s*(\{\{(char|user)\}\}|<(BOT|USER)>)\s*[:：]\s*(.*)$", re.IGNORECASE)


def _turns(block: str) -> list[tuple[str, str]]:
    turns: list[tuple[str, str]] = []
    for line in block.splitlines():
        m = _TURN.match(line)
        if m:
            who = (m.group(2) or m.group(3)).lower()
            turns.append(("char" if who in ("char", "bot") else "user", m.group(4).strip()))
        elif turns and line.strip():
            turns[-1] = (turns[-1][0], f"{turns[-1][1]} {line.strip()}")
    return [(s, t) for s, t in turns if t]


def script_example(card: CharacterCard, script: str, limit: int = 6) -> str:
    """A ``mes_example`` from her script: the first few (line, her reply) exchanges."""
    blocks: list[str] = []
    previous: tuple[str, str] | None = None
    for raw in script.splitlines():
        m = re.match(r"^【(?P<s>[^】]+)】「(?P<t>.*)」\s*$", raw.strip())
        if not m:
            continue
        if m["s"] == card.short_name and previous is not None and previous[0] != card.short_name:
            blocks.append(f"<START>\n{{{{user}}}}: {previous[1]}\n{{{{char}}}}: {m['t']}")
            if len(blocks) >= limit:
                break
        previous = (m["s"], m["t"])
    return "\n".join(blocks)
