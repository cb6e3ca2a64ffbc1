"""Feeding text to the morphological analyser (fugashi/MeCab) in bounded pieces.

fugashi crashes the whole process (a segfault, not an exception) on very long input
(somewhere between 0.5 M and 1 M characters), so nothing longer than
:data:`TAGGER_MAX_CHARS` is ever handed to it: longer texts are cut at sentence ends
(else at spaces or punctuation, else hard) and tagged piece by piece.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

TAGGER_MAX_CHARS = 4_000
"""Longest piece of text handed to the tagger in one call."""

_BREAK = re.compile(r"[。！？!?…\n」』]|[、，,\s]")


@lru_cache(maxsize=1)
def tagger() -> Any:
    """The process's one fugashi tagger (unidic-lite); ``ImportError`` without fugashi."""
    import fugashi

    return fugashi.Tagger()


def chunks(text: str, limit: int = TAGGER_MAX_CHARS) -> Iterator[str]:
    """``text`` in pieces of at most ``limit`` characters, cut after a sentence end if possible."""
    if limit < 1:
        raise ValueError("limit must be positive")
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        cut = 0
        for match in _BREAK.finditer(window, limit // 2):
            cut = match.end()
        end = start + (cut or limit)
        yield text[start:end]
        start = end
    if start < len(text):
        yield text[start:]


def surfaces(tagger: Any, text: str, limit: int = TAGGER_MAX_CHARS) -> list[str]:
    """Surface forms of ``text``'s words, tagging at most ``limit`` characters at a time."""
    return [w.surface for piece in chunks(text, limit) for w in tagger(piece)]


def words(tagger: Any, text: str, limit: int = TAGGER_MAX_CHARS) -> list[Any]:
    """fugashi word nodes of ``text`` (see :func:`surfaces`), copied out of each call's buffer."""
    out: list[Any] = []
    for piece in chunks(text, limit):
        out.extend(tagger(piece))
    return out
