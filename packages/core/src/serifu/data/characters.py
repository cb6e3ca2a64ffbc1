"""A character pack's own lines: her utterances, her dialogue pairs, her line count."""

from __future__ import annotations

from serifu.characters import CharacterPack
from serifu.data.cleaning import Cleaner
from serifu.data.dialogue import DialoguePair, make_pairs
from serifu.data.io import read_utterances
from serifu.kinds import Utterance


def character_utterances(pack: CharacterPack) -> list[Utterance]:
    """All utterances (every speaker) of the pack's scripts, in file order."""
    return read_utterances(pack.scripts, pack.source)


def character_pairs(
    pack: CharacterPack, *, context_lines: int = 1, preset: str = "report"
) -> list[DialoguePair]:
    """Her dialogue pairs (previous line by someone else -> her reply), cleaned by ``preset``."""
    speaker = pack.card().short_name
    cleaner = Cleaner.build(preset)
    return make_pairs(
        character_utterances(pack), speaker, context_lines=context_lines, cleaner=cleaner
    ).pairs


def count_character_lines(pack: CharacterPack) -> int:
    """Number of spoken lines of the character in her pack's scripts."""
    speaker = pack.card().short_name
    return sum(1 for u in character_utterances(pack) if u.speaker == speaker)
