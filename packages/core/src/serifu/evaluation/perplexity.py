"""Perplexity of real held-out replies given their prompts, from per-pair (sum NLL, tokens)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def perplexity(scores: Sequence[tuple[float, int]]) -> float | None:
    """exp(total NLL / total tokens); None when nothing was scored."""
    tokens = sum(n for _, n in scores)
    if tokens == 0:
        return None
    return math.exp(sum(nll for nll, _ in scores) / tokens)


def reduction(base: float | None, tuned: float | None) -> float | None:
    """Relative drop from base to tuned (0.3 = 30 % lower); None if either is missing."""
    if base is None or tuned is None or base <= 0:
        return None
    return (base - tuned) / base
