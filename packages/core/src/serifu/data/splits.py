"""Seeded train/validation/test splits by scene: a scene never spans two splits."""

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
) -> SplitPlan:
    """Assign each example (given its scene id) to a split.

    Scenes are shuffled with ``seed`` and the first ones go to test, then validation.
    With fewer than 3 scenes (a format without scenes) blocks of 20 consecutive examples
    are split instead, so that validation and test are not empty.
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
    n_test = _n_for(test_fraction, len(order))
    n_val = _n_for(validation_fraction, len(order))
    if n_test + n_val >= len(order):  # keep at least one unit for training
        n_test = n_val = 0
    where = {u: "test" for u in order[:n_test]}
    where.update({u: "validation" for u in order[n_test : n_test + n_val]})
    return SplitPlan([where.get(u, "train") for u in unit_of], unit_name)
