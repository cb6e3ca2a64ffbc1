"""Coherence as response selection: does the model prefer her true reply to a line over
other replies of hers?

For each held-out (protagonist line, her real reply) pair, the model scores the true reply
and a pool of ``pool`` (default 19) of her other held-out replies, drawn with a fixed seed,
given the line. ``rank@1`` is the chance that the true reply beats ``distractors`` (default 9)
others drawn at random from that pool (chance = 1 / (1 + distractors), 0.1 by default),
computed exactly over every draw: with ``r`` of the ``M`` pool replies scoring at least as
high as the true one, the true reply wins a draw of ``k`` with probability C(M−r, k) / C(M, k).
That is the same quantity as ranking against one random draw of 9, without the noise of
which 9 were drawn (a tie is a loss).

Two scores are reported:
- ``pmi`` (the headline): log p(reply | line) − log p(reply | an empty line) — how much the
  line itself raises the reply, so a reply that is merely short or frequent does not win;
- ``likelihood``: mean log p(reply | line) per token.
``rank1_ci`` is a 95 % bootstrap interval over the lines; :func:`paired_difference` compares
two runs on the same lines (tuned vs base). The model never trained on these replies
(the validation and test splits of her dialogue data).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from math import comb
from typing import Any

Scorer = Callable[[Sequence[str], Sequence[str]], list[tuple[float, int]]]
NEUTRAL_QUERY = "……"
"""The "empty" line for the PMI baseline (a silent beat, as scripts write it)."""


def candidate_sets(
    pairs: Sequence[tuple[str, str]],
    *,
    distractors: int = 9,
    pool: int = 19,
    seed: int = 0,
    limit: int = 80,
) -> list[tuple[str, list[str]]]:
    """(line, [true reply, pool replies…]) for up to ``limit`` pairs; lines with fewer than
    ``distractors`` other distinct replies are left out."""
    rng = random.Random(seed)
    chosen = list(pairs)
    rng.shuffle(chosen)
    chosen = chosen[:limit]
    replies = list(dict.fromkeys(r for _, r in pairs))
    out = []
    for query, true in chosen:
        others = [r for r in replies if r != true]
        if len(others) < distractors:
            continue
        out.append((query, [true, *rng.sample(others, min(pool, len(others)))]))
    return out


def win_probability(scores: Sequence[float], distractors: int) -> float:
    """P(scores[0] > every one of ``distractors`` drawn without replacement from scores[1:])."""
    others = scores[1:]
    at_least = sum(v >= scores[0] for v in others)
    return comb(len(others) - at_least, distractors) / comb(len(others), distractors)


def bootstrap_ci(
    values: Sequence[float], *, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``values`` resampled with replacement."""
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(draws))
    return (means[int(0.025 * draws)], means[int(0.975 * draws) - 1])


def response_selection(
    scorer: Scorer,
    pairs: Sequence[tuple[str, str]],
    *,
    distractors: int = 9,
    pool: int = 19,
    seed: int = 0,
    limit: int = 80,
) -> dict[str, Any]:
    """Exact rank@1 (PMI and likelihood) with its interval, and each line's win probability."""
    sets = candidate_sets(pairs, distractors=distractors, pool=pool, seed=seed, limit=limit)
    if not sets:
        return {"skipped": f"fewer than {distractors + 1} distinct held-out replies"}
    queries = [q for q, cands in sets for _ in cands]
    replies = [c for _, cands in sets for c in cands]
    given = scorer(queries, replies)
    unique = list(dict.fromkeys(replies))
    alone = dict(zip(unique, scorer([NEUTRAL_QUERY] * len(unique), unique), strict=True))
    pmi: list[float] = []
    likelihood: list[float] = []
    start = 0
    for _, cands in sets:
        rows = range(start, start + len(cands))
        start += len(cands)
        pmi.append(win_probability([alone[replies[j]][0] - given[j][0] for j in rows], distractors))
        likelihood.append(
            win_probability([-given[j][0] / max(given[j][1], 1) for j in rows], distractors)
        )
    low, high = bootstrap_ci(pmi)
    return {
        "summary": {
            "rank1": round(sum(pmi) / len(pmi), 4),
            "rank1_ci": [round(low, 4), round(high, 4)],
            "rank1_likelihood": round(sum(likelihood) / len(likelihood), 4),
            "chance": round(1 / (1 + distractors), 4),
            "n": len(sets),
            "pool": pool,
        },
        "items": [
            {"query": q, "reply": c[0], "win": round(w, 4)}
            for (q, c), w in zip(sets, pmi, strict=True)
        ],
    }


def paired_diffs(
    items: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]
) -> list[float]:
    """Per line both scored: ``items``' win − ``baseline``'s (lines matched by query and reply)."""
    base = {(i["query"], i["reply"]): i.get("win") for i in baseline}
    return [
        i["win"] - base[key]
        for i in items
        if (key := (i["query"], i["reply"])) in base
        and i.get("win") is not None
        and base[key] is not None
    ]


def summarise_diffs(diffs: Sequence[float]) -> dict[str, Any] | None:
    """Mean of paired per-line differences with a 95 % bootstrap interval (None: no lines)."""
    if not diffs:
        return None
    low, high = bootstrap_ci(list(diffs))
    return {
        "difference": round(sum(diffs) / len(diffs), 4),
        "ci": [round(low, 4), round(high, 4)],
        "n": len(diffs),
    }


def paired_difference(
    items: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """Mean rank@1 difference (``items`` − ``baseline``) over the lines both scored, with a
    95 % bootstrap interval; None when they share no line (other data or an older report)."""
    return summarise_diffs(paired_diffs(items, baseline))
