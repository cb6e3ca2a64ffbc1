"""Dialogue pairs: the line before a character's line (by someone else) -> her reply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serifu.data.cleaning import Cleaner
from serifu.kinds import Utterance


@dataclass
class DialoguePair:
    """One training example of format ``dialogue`` (the dataset's columns)."""

    context: list[str]
    """Up to ``context_lines`` lines before the query, oldest first, each ``話者「…」``."""
    query: str
    query_speaker: str
    reply: str
    """The character's line, cleaned, without a trailing newline."""
    character: str
    scene: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_row(self) -> dict[str, Any]:
        return {
            "context": list(self.context),
            "query": self.query,
            "query_speaker": self.query_speaker,
            "reply": self.reply,
            "character": self.character,
            "scene": self.scene,
        }


def scene_key(u: Utterance) -> str:
    """A scene id unique across files: ``<file name>#<scene>``."""
    return f"{Path(u.source).name}#{u.scene}"


@dataclass
class PairsResult:
    pairs: list[DialoguePair]
    rules: dict[str, dict[str, Any]]
    dropped_query: int
    """Pairs lost because the query line was dropped by cleaning."""


def make_pairs(
    utterances: Sequence[Utterance],
    character: str,
    *,
    context_lines: int = 1,
    cleaner: Cleaner | None = None,
) -> PairsResult:
    """Every line of ``character`` whose previous line in the scene is by someone else.

    Replies, queries and context are cleaned by ``cleaner`` without its final rules
    (no trailing newline); a pair whose reply or query is dropped is left out. The
    rule counts are over the character's replies.
    """
    cleaner = cleaner or Cleaner([])
    candidates = [
        i
        for i, u in enumerate(utterances)
        if u.speaker == character
        and i > 0
        and utterances[i - 1].speaker != character
        and scene_key(utterances[i - 1]) == scene_key(u)
    ]
    replies = cleaner.run([utterances[i].text for i in candidates], final=False)
    cache: dict[int, str | None] = {}

    def cleaned(j: int) -> str | None:
        if j not in cache:
            cache[j] = cleaner.clean_one(utterances[j].text, final=False)
        return cache[j]

    pairs: list[DialoguePair] = []
    dropped_query = 0
    for idx, reply in zip(replies.kept, replies.texts, strict=True):
        i = candidates[idx]
        u, q = utterances[i], utterances[i - 1]
        query = cleaned(i - 1)
        if not query:
            dropped_query += 1
            continue
        context: list[str] = []
        j = i - 2
        while j >= 0 and len(context) < context_lines and scene_key(utterances[j]) == scene_key(u):
            text = cleaned(j)
            if text:
                context.append(f"{utterances[j].speaker}「{text}」")
            j -= 1
        context.reverse()
        pairs.append(
            DialoguePair(
                context,
                query,
                q.speaker,
                reply,
                character,
                scene_key(u),
                {"line": u.line, "source": u.source},
            )
        )
    return PairsResult(pairs, replies.rules, dropped_query)
