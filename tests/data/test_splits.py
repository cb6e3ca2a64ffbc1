"""Train/validation/test splits: by scene where her scenes allow held-out splits near the
asked fractions, else by size (whole scenes dealt by their examples, then runs of
consecutive examples of a scene)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from serifu.config.data import DataConfig
from serifu.data.build import build_dataset
from serifu.data.splits import MIN_HELD_OUT, held_out_targets, near_targets, split_by_scene

from .conftest import PLAYS


def test_many_even_scenes_keep_the_split_by_scene_count() -> None:
    scenes = [f"s{i // 10}" for i in range(300)]  # 30 scenes of 10
    plan = split_by_scene(scenes, seed=3)
    assert plan.unit == "scene"
    counts = Counter(plan.assignment)
    assert counts["test"] == counts["validation"] == 30  # 3 scenes each
    by_scene: dict[str, set[str]] = {}
    for scene, split in zip(scenes, plan.assignment, strict=True):
        by_scene.setdefault(scene, set()).add(split)
    assert all(len(v) == 1 for v in by_scene.values())


def test_three_long_scenes_no_longer_hold_out_two_thirds() -> None:
    """Before: one scene each to test, validation and training (2/3 held out)."""
    scenes = ["a"] * 12 + ["b"] * 30 + ["c"] * 18
    plan = split_by_scene(scenes, seed=0)
    counts = Counter(plan.assignment)
    assert counts["test"] == counts["validation"] == 6 and counts["train"] == 48
    assert "runs of up to 6 consecutive examples" in plan.unit
    # each held-out run is consecutive examples of one scene
    for split in ("test", "validation"):
        idx = [i for i, a in enumerate(plan.assignment) if a == split]
        assert len({scenes[i] for i in idx}) <= 2
        assert near_targets(plan.assignment, held_out_targets(60, 0.1, 0.1))


def test_two_scenes_now_hold_something_out() -> None:
    """Before: fewer than 3 units (two scenes of < 20 examples' blocks) held out nothing."""
    scenes = ["a"] * 17 + ["b"] * 16
    counts = Counter(split_by_scene(scenes, seed=0).assignment)
    assert counts["test"] == counts["validation"] == 3 and counts["train"] == 27


def test_uneven_scenes_are_dealt_whole_by_size_when_that_is_enough() -> None:
    sizes = [40, 3, 2, 25, 4, 3, 30, 2, 5, 3, 2, 4, 30, 3, 2, 3, 25, 3]
    scenes = [f"s{i}" for i, n in enumerate(sizes) for _ in range(n)]
    plan = split_by_scene(scenes, seed=1)
    counts = Counter(plan.assignment)
    target = round(0.1 * len(scenes))
    assert plan.unit == "scene (dealt by size)"
    assert target / 2 <= counts["test"] <= 2 * target
    by_scene: dict[str, set[str]] = {}
    for scene, split in zip(scenes, plan.assignment, strict=True):
        by_scene.setdefault(scene, set()).add(split)
    assert all(len(v) == 1 for v in by_scene.values())


def test_few_examples_hold_nothing_out_and_splits_are_seeded() -> None:
    assert set(split_by_scene(["a"] * 4 + ["b"] * 5, seed=0).assignment) == {"train"}
    scenes = ["a"] * 12 + ["b"] * 30 + ["c"] * 18
    assert split_by_scene(scenes, seed=0) == split_by_scene(scenes, seed=0)
    assert split_by_scene(scenes, seed=0) != split_by_scene(scenes, seed=1)


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "options", "speakers"), PLAYS, ids=[p[0] for p in PLAYS])
def test_every_plays_top_speakers_get_held_out_splits_near_a_tenth(
    tmp_path: Path, play, name: str, options: dict[str, object], speakers: list[tuple[str, int]]
) -> None:  # type: ignore[no-untyped-def]
    """Real plays (few long scenes, or none): each held-out split is within half and 1.5
    times a tenth of her examples, and training keeps the rest."""
    path = play(name)
    for speaker, _ in speakers:
        result = build_dataset(
            [path], tmp_path / speaker, source="aozora-play", speaker=speaker,
            options=options, config=DataConfig(),
        )  # fmt: skip
        total = sum(result.splits.values())
        if total < MIN_HELD_OUT:  # too few lines to hold any out
            assert result.splits["train"] == total
            continue
        want = max(1, round(0.1 * total))
        for split in ("test", "validation"):
            assert want / 2 <= result.splits[split] <= 1.5 * want, (speaker, result.splits)
        assert result.splits["train"] >= 0.7 * total, (speaker, result.splits)
