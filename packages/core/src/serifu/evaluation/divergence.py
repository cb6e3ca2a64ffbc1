"""Discrete distributions and the Jensen–Shannon divergence (base 2, so it lies in [0, 1])."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping


def distribution(items: Iterable[str]) -> dict[str, float]:
    """Relative frequencies of ``items`` (empty for no items)."""
    counts = Counter(items)
    total = sum(counts.values())
    return {k: v / total for k, v in counts.most_common()} if total else {}


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """JSD(p, q) in bits. An empty distribution is maximally far from a non-empty one."""
    if not p or not q:
        return 0.0 if not p and not q else 1.0
    jsd = 0.0
    for key in set(p) | set(q):
        pk, qk = p.get(key, 0.0), q.get(key, 0.0)
        mk = (pk + qk) / 2
        if pk:
            jsd += 0.5 * pk * math.log2(pk / mk)
        if qk:
            jsd += 0.5 * qk * math.log2(qk / mk)
    return max(0.0, min(1.0, jsd))


def top(dist: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` most frequent keys, rounded for reports."""
    return {key: round(value, 4) for key, value in sorted(dist.items(), key=lambda kv: -kv[1])[:k]}
