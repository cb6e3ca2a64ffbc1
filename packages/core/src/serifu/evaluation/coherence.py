"""Coherence as response selection: does the model prefer her true reply to a line over
other replies of hers?

For each held-out (protagonist line, her real reply) pair, the candidates are that reply
and ``distractors`` (default 9) of her other held-out replies, drawn with a fixed seed. The
model scores every candidate given the line; ``rank@1`` is the share of lines whose true
reply wins (chance = 1 / (1 + distractors), 0.1 by default).

Two scores are reported:
- ``pmi`` (the headline): log p(reply | line) − log p(reply | an empty line) — how much the
  line itself raises the reply, so a reply that is merely short or frequent does not win;
- ``likelihood``: mean log p(reply | line) per token.
The model never trained on these replies (test split of her dialogue data).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

Scorer = Callable[[Sequence[str], Sequence[str]], list[tuple[float, int]]]
NEUTRAL_QUERY = "……"
"""The "empty" line for the PMI baseline (a silent beat, as scripts write it)."""


def candidate_sets(
    pairs: Sequence[tuple[str, str]], *, distractors: int = 9, seed: int = 0, limit: int = 40
) -> list[tuple[str, list[str]]]:
    """(line, [true reply, distractor replies…]) for up to ``limit`` pairs."""
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
        out.append((query, [true, *rng.sample(others, distractors)]))
    return out


def _rank1(scores: Sequence[Sequence[float]]) -> float:
    """Share of sets whose true reply (index 0) scores strictly above every distractor
    (a tie is a loss: a scorer that cannot tell replies apart gets 0, not 1)."""
    wins = [all(s[0] > v for v in s[1:]) for s in scores]
    return sum(wins) / len(wins) if wins else 0.0


def response_selection(
    scorer: Scorer,
    pairs: Sequence[tuple[str, str]],
    *,
    distractors: int = 9,
    seed: int = 0,
    limit: int = 40,
) -> dict[str, Any]:
    """rank@1 (PMI and likelihood) and mean reciprocal rank over the candidate sets."""
    sets = candidate_sets(pairs, distractors=distractors, seed=seed, limit=limit)
    if not sets:
        return {"skipped": f"fewer than {distractors + 1} distinct held-out replies"}
    queries = [q for q, cands in sets for _ in cands]
    replies = [c for _, cands in sets for c in cands]
    given = scorer(queries, replies)
    alone = scorer([NEUTRAL_QUERY] * len(replies), replies)
    k = distractors + 1
    pmi, likelihood = [], []
    for i in range(len(sets)):
        rows = range(i * k, (i + 1) * k)
        pmi.append([alone[j][0] - given[j][0] for j in rows])
        likelihood.append([-given[j][0] / max(given[j][1], 1) for j in rows])
    ranks = [1 + sum(v >= s[0] for v in s[1:]) for s in pmi]
    return {
        "summary": {
            "rank1": round(_rank1(pmi), 4),
            "rank1_likelihood": round(_rank1(likelihood), 4),
            "mrr": round(sum(1 / r for r in ranks) / len(ranks), 4),
            "chance": round(1 / k, 4),
            "n": len(sets),
        },
        "items": [
            {"query": q, "reply": c[0], "rank": r} for (q, c), r in zip(sets, ranks, strict=True)
        ],
    }
