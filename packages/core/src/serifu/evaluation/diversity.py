"""Distinct-n: the share of unique morpheme n-grams among all n-grams of the replies."""

from __future__ import annotations

from collections.abc import Sequence

from serifu.evaluation.morph import morphemes


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Corpus-level distinct-n over morphemes; 0.0 when there are no n-grams."""
    grams = []
    for text in texts:
        words = [m.surface for m in morphemes(text)]
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def diversity(texts: Sequence[str]) -> dict[str, float]:
    return {
        "distinct_1": round(distinct_n(texts, 1), 4),
        "distinct_2": round(distinct_n(texts, 2), 4),
        "unique_replies": round(len({t.strip() for t in texts}) / len(texts), 4) if texts else 0.0,
    }
