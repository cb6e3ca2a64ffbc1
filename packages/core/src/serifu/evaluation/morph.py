"""Japanese morphological analysis with fugashi + unidic-lite (one tagger per process)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Morpheme:
    surface: str
    pos1: str
    """UniDic's top-level part of speech (名詞, 助詞, 補助記号 …)."""
    pos2: str


@lru_cache(maxsize=1)
def _tagger() -> Any:
    import fugashi

    return fugashi.Tagger()


def morphemes(text: str) -> list[Morpheme]:
    """Morphemes of ``text`` (empty for empty text)."""
    if not text.strip():
        return []
    return [
        Morpheme(w.surface, w.feature.pos1 or "", w.feature.pos2 or "") for w in _tagger()(text)
    ]
