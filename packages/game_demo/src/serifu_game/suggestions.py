"""Suggested lines for the player: real protagonist lines from her scripts that fit the place."""

from __future__ import annotations

import random
from collections.abc import Sequence

from serifu_game.backends.retrieval import RetrievalBackend
from serifu_game.pairs import Pair

MAX_LEN = 22


class Suggester:
    """Picks a few short protagonist lines, favouring those about the current place."""

    def __init__(self, pairs: Sequence[Pair]) -> None:
        usable = [p for p in pairs if 2 <= len(p.query) <= MAX_LEN]
        self._index = RetrievalBackend(usable) if usable else None

    def suggest(self, topic: str, *, seed: int, k: int = 3, exclude: Sequence[str] = ()) -> list[str]:
        """``k`` distinct lines, drawn (seeded) from the 12 best matches for ``topic``."""
        if self._index is None:
            return []
        scores = self._index.scores(topic)
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        pool: list[str] = []
        for i in ranked:
            q = self._index.pairs[i].query
            if q not in pool and q not in exclude:
                pool.append(q)
            if len(pool) >= 12:
                break
        return random.Random(seed).sample(pool, min(k, len(pool)))
