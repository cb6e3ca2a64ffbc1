"""The heroine's real dialogue pairs (protagonist line -> her reply), for retrieval and openers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from serifu.characters import CharacterPack


@dataclass(frozen=True)
class Pair:
    """One exchange from her scripts: what was said to her, and what she answered."""

    query: str
    reply: str
    scene: str = ""
    query_speaker: str = ""


def load_pairs(pack: CharacterPack) -> list[Pair]:
    """Her dialogue pairs, from ``serifu.data.characters.character_pairs`` when available."""
    from serifu.data import characters as data_characters

    character_pairs: Any = getattr(data_characters, "character_pairs", None)
    if character_pairs is not None:
        try:
            return [
                Pair(str(p.query), str(p.reply), str(p.scene), str(p.query_speaker))
                for p in character_pairs(pack)
            ]
        except NotImplementedError:
            pass
    return _parse_sample_scripts(pack)


def her_lines(pack: CharacterPack) -> list[str]:
    """Every line she speaks in her scripts (from ``character_utterances`` when available)."""
    from serifu.data import characters as data_characters

    card = pack.card()
    character_utterances: Any = getattr(data_characters, "character_utterances", None)
    if character_utterances is not None:
        try:
            names = {card.short_name, card.name}
            return [u.text for u in character_utterances(pack) if u.speaker in names]
        except NotImplementedError:
            pass
    lines = []
    for path in pack.scripts:
        for raw in path.read_text(encoding="utf-8").splitlines():
            match = _SPOKEN.match(raw.strip())
            if match and match["speaker"] == card.short_name:
                lines.append(match["text"])
    return lines


_SPOKEN = re.compile(r"^【(?P<speaker>[^】]+)】「(?P<text>.*)」\s*$")


def _parse_sample_scripts(pack: CharacterPack) -> list[Pair]:
    """Fallback reader for the sample-cast script format (cast/FORMAT.md)."""
    card = pack.card()
    pairs: list[Pair] = []
    for path in pack.scripts:
        scene, previous = "", None
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if line.startswith("[scene]"):
                scene, previous = line.removeprefix("[scene]").strip(), None
                continue
            match = _SPOKEN.match(line)
            if match is None:
                continue
            speaker, text = match["speaker"], match["text"]
            if speaker == card.short_name and previous and previous[0] != speaker:
                pairs.append(Pair(previous[1], text, scene, previous[0]))
            previous = (speaker, text)
    return pairs
