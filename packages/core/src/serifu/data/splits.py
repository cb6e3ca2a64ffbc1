"""Seeded train/validation/test splits by scene: a scene never spans two splits, as long
as her scenes allow held-out splits near the asked fractions of her examples.

Scenes are first dealt by count (a tenth of the scenes to test, …). A play with few, long
scenes defeats that: three scenes dealt one to test, one to validation and one to training
hold out two thirds of her lines (with fewer than three, nothing). Then the split goes by
size (:func:`split_by_size`): whole scenes dealt by their number of examples, and where
even that misses, runs of consecutive examples of a scene, each no longer than the smaller
held-out target. ``SplitPlan.unit`` (``split_unit`` in ``build.json``) says which was used.

With ``fold=(i, k)`` the split is fold ``i`` of a k-fold cross-validation: the shuffled scenes
are dealt into ``k`` folds and fold ``i`` is held out, so the k datasets hold out every scene
exactly once (a held-out measure over all her lines instead of one tenth or one fifth).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

SPLITS = ("train", "validation", "test")
MIN_SCENES = 3
BLOCK_SIZE = 20
MIN_HELD_OUT = 10
"""Fewer examples than this hold nothing out (a held-out split of a few lines measures nothing)."""
NEAR = 1.5
"""A held-out split is near its target from half of it up to this many times it."""


@dataclass(frozen=True)
class SplitPlan:
    """The split of each example, and what unit was split (scenes, or blocks when too few)."""

    assignment: list[str]
    unit: str


def _n_for(fraction: float, n_units: int) -> int:
    if fraction <= 0 or n_units < MIN_SCENES:
        return 0
    return max(1, round(fraction * n_units))


def split_by_scene(
    scenes: Sequence[str],
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    fold: tuple[int, int] | None = None,
) -> SplitPlan:
    """Assign each example (given its scene id) to a split.

    Scenes are shuffled with ``seed`` and the first ones go to test, then validation.
    With fewer than 3 scenes (a format without scenes) blocks of 20 consecutive examples
    are split instead, so that validation and test are not empty. When the held-out splits
    that gives are not within half and 1.5 times their share of her examples
    (:func:`near_targets`), the split goes by size (:func:`split_by_size`).

    ``fold=(i, k)``: every ``k``-th shuffled unit from the ``i``-th on is held out, the rest
    trains; the held-out units go to test and validation in the ratio of the two fractions
    (all to test when both are 0). ``ValueError`` when there are fewer units than folds.
    """
    units = list(dict.fromkeys(scenes))
    unit_of = list(scenes)
    unit_name = "scene"
    if len(units) < MIN_SCENES:
        unit_of = [f"{s}/block{i // BLOCK_SIZE}" for i, s in enumerate(scenes)]
        units = list(dict.fromkeys(unit_of))
        unit_name = f"block of {BLOCK_SIZE} consecutive examples (fewer than {MIN_SCENES} scenes)"
    order = units[:]
    random.Random(seed).shuffle(order)
    if fold is not None:
        return SplitPlan(
            _fold_assignment(order, unit_of, fold, validation_fraction, test_fraction), unit_name
        )
    n_test = _n_for(test_fraction, len(order))
    n_val = _n_for(validation_fraction, len(order))
    if n_test + n_val >= len(order):  # keep at least one unit for training
        n_test = n_val = 0
    where = {u: "test" for u in order[:n_test]}
    where.update({u: "validation" for u in order[n_test : n_test + n_val]})
    plan = SplitPlan([where.get(u, "train") for u in unit_of], unit_name)
    targets = held_out_targets(len(scenes), validation_fraction, test_fraction)
    if near_targets(plan.assignment, targets):
        return plan
    return split_by_size(scenes, targets, seed)


def held_out_targets(n: int, validation_fraction: float, test_fraction: float) -> dict[str, int]:
    """Examples wanted in each held-out split: the fraction of ``n``, at least one when the
    fraction is positive, none at all below :data:`MIN_HELD_OUT` examples."""
    if n < MIN_HELD_OUT:
        return {"test": 0, "validation": 0}
    return {
        split: max(1, round(fraction * n)) if fraction > 0 else 0
        for split, fraction in (("test", test_fraction), ("validation", validation_fraction))
    }


def near_targets(assignment: Sequence[str], targets: dict[str, int]) -> bool:
    """Whether each held-out split holds between half and one and a half times its target
    (exactly none when the target is none)."""
    for split, want in targets.items():
        got = sum(a == split for a in assignment)
        if not (want / 2 <= got <= NEAR * want):
            return False
    return True


def split_by_size(scenes: Sequence[str], targets: dict[str, int], seed: int) -> SplitPlan:
    """Held-out splits sized to ``targets``: whole scenes dealt by their number of examples
    when that comes near the targets, else runs of consecutive examples of a scene no
    longer than the smaller target (shorter scenes stay whole); seeded."""
    members: dict[str, list[int]] = {}
    for i, scene in enumerate(scenes):
        members.setdefault(scene, []).append(i)
    whole = _deal(list(members.values()), targets, seed, len(scenes))
    if near_targets(whole, targets):
        return SplitPlan(whole, "scene (dealt by size)")
    wanted = [w for w in targets.values() if w > 0]
    run = min(wanted) if wanted else max(1, len(scenes))
    runs = [idx[k : k + run] for idx in members.values() for k in range(0, len(idx), run)]
    unit = (
        f"runs of up to {run} consecutive examples of a scene (too few scenes for the "
        "held-out fractions)"
    )
    return SplitPlan(_deal(runs, targets, seed, len(scenes)), unit)


def _deal(units: list[list[int]], targets: dict[str, int], seed: int, n: int) -> list[str]:
    """Shuffle ``units`` (example indices) and give each held-out split those that bring its
    size nearer its target without passing :data:`NEAR` times it; the rest train (all of it,
    were training left empty)."""
    order = units[:]
    random.Random(seed).shuffle(order)
    assignment = ["train"] * n
    free = list(range(len(order)))
    for split in ("test", "validation"):
        want, got = targets[split], 0
        for u in list(free):
            if got >= want:
                break
            size = len(order[u])
            if abs(got + size - want) < abs(got - want) and got + size <= NEAR * want:
                for i in order[u]:
                    assignment[i] = split
                got += size
                free.remove(u)
    return assignment if "train" in assignment else ["train"] * n


def _fold_assignment(
    order: Sequence[str],
    unit_of: Sequence[str],
    fold: tuple[int, int],
    validation_fraction: float,
    test_fraction: float,
) -> list[str]:
    i, k = fold
    if not 0 <= i < k or k < 2:
        raise ValueError(f"fold {i}/{k}: need 2 or more folds and 0 <= fold < folds")
    if len(order) < k:
        raise ValueError(f"{len(order)} scenes cannot be dealt into {k} folds")
    held = order[i::k]
    share = (
        test_fraction / (test_fraction + validation_fraction)
        if test_fraction + validation_fraction > 0
        else 1.0
    )
    n_test = round(share * len(held))
    where = {u: "test" for u in held[:n_test]}
    where.update({u: "validation" for u in held[n_test:]})
    return [where.get(u, "train") for u in unit_of]
