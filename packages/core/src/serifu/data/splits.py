"""Seeded train/validation/test splits by scene: a scene never spans two splits.

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
    are split instead, so that validation and test are not empty.

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
    return SplitPlan([where.get(u, "train") for u in unit_of], unit_name)


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
