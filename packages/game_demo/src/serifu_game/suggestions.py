"""Suggested lines for the player: real protagonist lines from her scripts that fit the place."""

from __future__ import annotations

import random
from collections.abc import Sequence

from serifu_game.backends.retrieval import RetrievalBackend
from serifu_game.pairs import Pair

MAX_LEN = 22


class Suggester:
    """Picks a few short protagonist lines, favouring those about the current place."""

    def __init__(self, pairs: Sequence[Pair], protagonist: str = "主人公") -> None:
        usable = [
            p
            for p in pairs
            if 2 <= len(p.query) <= MAX_LEN and p.query_speaker in ("", protagonist)
        ]
        self._index = RetrievalBackend(usable) if usable else None

    def suggest(
        self, topic: str, *, seed: int, scene: str = "", k: int = 3, exclude: Sequence[str] = ()
    ) -> list[str]:
        """``k`` distinct lines drawn (seeded) from the lines of ``scene`` (the scene her
        opening line comes from); when it has fewer than ``k`` left, from the best matches
        for ``topic``."""
        if self._index is None:
            return []
        pairs = self._index.pairs
        scores = self._index.scores(topic)
        in_scene = [i for i, p in enumerate(pairs) if scene and p.scene == scene]
        by_topic = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        pool: list[str] = []
        for group in (in_scene, by_topic):
            if len(pool) >= k:
                break
            for i in group:
                q = pairs[i].query
                if q not in pool and q not in exclude:
                    pool.append(q)
                if len(pool) >= 12:
                    break
        return random.Random(seed).sample(pool, min(k, len(pool)))
