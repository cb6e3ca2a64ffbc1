"""Japanese morphological analysis with fugashi + unidic-lite (one tagger per process)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Morpheme:
    surface: str
    pos1: str
    """UniDic's top-level part of speech (名詞, 助詞, 補助記号 …)."""
    pos2: str


def morphemes(text: str) -> list[Morpheme]:
    """Morphemes of ``text`` (empty for empty text)."""
    if not text.strip():
        return []
    from serifu.data.tagging import tagger, words  # bounded pieces: fugashi crashes on huge input

    return [
        Morpheme(w.surface, w.feature.pos1 or "", w.feature.pos2 or "")
        for w in words(tagger(), text)
    ]
