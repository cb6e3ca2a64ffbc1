"""The instant CPU backend: she answers with her most fitting real line (BM25 over her pairs)."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from serifu_game.pairs import Pair
from serifu_game.textsplit import char_bigrams, word_pieces


@dataclass(frozen=True)
class Match:
    """The pair whose protagonist line best fits the player's, and its score."""

    pair: Pair
    score: float
    weak: bool = False
    """Nothing fitted well, so she answers with a scene-opening line instead."""


class RetrievalBackend:
    """Answers with the reply of the pair whose query is closest to the player's line.

    Scoring is BM25 over character bigrams (and non-hiragana unigrams) of the pairs'
    queries; replies she gave recently are penalised so that she does not repeat herself;
    ties are broken by a seeded random draw, so a game is reproducible. When nothing fits
    (a greeting, small talk the script never had), she answers with the first line she says
    in one of her scenes: those are her reactions to the protagonist turning up.
    """

    weak_score = 7.0

    kind = "retrieval"
    label = "台本検索 (retrieval)"
    ready = True
    """Nothing to load: the index is built in the constructor."""

    def __init__(self, pairs: Sequence[Pair], *, seed: int = 0, pace: float = 0.0) -> None:
        if not pairs:
            raise ValueError("the retrieval backend needs at least one dialogue pair")
        self.pairs = list(pairs)
        self.pace = pace
        self._rng = random.Random(seed)
        self._recent: list[str] = []
        self._docs = [Counter(char_bigrams(p.query)) for p in self.pairs]
        self._avg_len = sum(sum(d.values()) for d in self._docs) / len(self._docs) or 1.0
        df: Counter[str] = Counter()
        for doc in self._docs:
            df.update(doc.keys())
        n = len(self._docs)
        self._idf = {t: math.log(1 + (n - k + 0.5) / (k + 0.5)) for t, k in df.items()}
        self.last_match: Match | None = None
        seen: set[str] = set()
        self._openers = []
        for p in self.pairs:
            if p.scene not in seen:
                seen.add(p.scene)
                self._openers.append(p)

    def prepare(self) -> None:
        """Nothing to load: the index is built in the constructor."""

    def scores(self, text: str) -> list[float]:
        terms = Counter(char_bigrams(text))
        k1, b = 1.5, 0.75
        scores = []
        for doc in self._docs:
            length = sum(doc.values())
            s = 0.0
            for term, q_count in terms.items():
                tf = doc.get(term, 0)
                if tf:
                    norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / self._avg_len))
                    s += self._idf[term] * norm * (1 + math.log(q_count))
            scores.append(s)
        return scores

    def best(self, text: str, *, remember: bool = True) -> Match:
        """The best pair for ``text``; with ``remember`` its reply counts as recently said."""
        scores = self.scores(text)
        for i, pair in enumerate(self.pairs):
            if pair.reply in self._recent:
                scores[i] *= 0.3
        top = max(scores)
        if top < self.weak_score:
            fresh = [p for p in self._openers if p.reply not in self._recent] or self._openers
            match = Match(self._rng.choice(fresh), top, weak=True)
        else:
            tied = [i for i, s in enumerate(scores) if s >= top - 1e-9]
            match = Match(self.pairs[self._rng.choice(tied)], top)
        if remember:
            self._recent = ([*self._recent, match.pair.reply])[-20:]
        return match

    def reply(self, query: str) -> str:
        """Her whole reply at once (tests and scripts)."""
        self.last_match = self.best(query)
        return self.last_match.pair.reply

    def stream(
        self, query: str, history: Sequence[tuple[str, str]], cancel: threading.Event
    ) -> Iterator[str]:
        text = self.reply(query)
        for piece in word_pieces(text):
            if cancel.is_set():
                return
            if self.pace:
                time.sleep(self.pace)
            yield piece

    def debug_info(self, query: str, history: Sequence[tuple[str, str]]) -> str:
        if self.last_match is None:
            return "(まだ返事がありません)"
        m = self.last_match
        scene = f"［{m.pair.scene}］\n" if m.pair.scene else ""
        how = "（一致が弱いので場面の最初のセリフ）" if m.weak else ""
        return (
            f"{scene}主人公「{m.pair.query}」\n→ 彼女「{m.pair.reply}」\n"
            f"BM25 = {m.score:.2f}（{len(self.pairs)}組から）{how}"
        )
