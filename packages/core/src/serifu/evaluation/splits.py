"""Held-out splits by scene: a scene's lines never land on both sides.

Each source file is split on its own (so every heroine of a cast, one script each, is
represented in the test split); a file with too few scenes is cut into blocks of
consecutive lines that act as scenes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

BLOCK_LINES = 25
"""Where a file has too few scenes, consecutive blocks of this many lines act as scenes."""
MIN_SCENES = 10


@dataclass(frozen=True)
class LabeledLine:
    """A real line with its speaker label and where it comes from."""

    text: str
    label: str
    source: str = ""
    scene: int = 0
    line: int = 0


def _scene_keys(lines: Sequence[LabeledLine]) -> list[tuple[int, int]]:
    """Scene key per line: the scene, or (scene, block) where the file has few scenes."""
    if len({line.scene for line in lines}) >= MIN_SCENES:
        return [(line.scene, 0) for line in lines]
    return [(line.scene, i // BLOCK_LINES) for i, line in enumerate(lines)]


def _split_one_source(
    lines: Sequence[LabeledLine], test_fraction: float, rng: random.Random
) -> tuple[list[LabeledLine], list[LabeledLine]]:
    keys = _scene_keys(lines)
    sizes: dict[tuple[int, int], int] = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    order = sorted(sizes)
    rng.shuffle(order)
    test_keys: set[tuple[int, int]] = set()
    taken = 0
    for key in order:
        if taken >= test_fraction * len(lines) or len(test_keys) == len(order) - 1:
            break
        test_keys.add(key)
        taken += sizes[key]
    train = [line for line, key in zip(lines, keys, strict=True) if key not in test_keys]
    test = [line for line, key in zip(lines, keys, strict=True) if key in test_keys]
    return train, test


def split_by_scene(
    lines: Sequence[LabeledLine], *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[LabeledLine], list[LabeledLine]]:
    """Seeded (train, test) split that moves whole scenes of each source to the test side."""
    rng = random.Random(seed)
    by_source: dict[str, list[LabeledLine]] = {}
    for line in lines:
        by_source.setdefault(line.source, []).append(line)
    train: list[LabeledLine] = []
    test: list[LabeledLine] = []
    for source in sorted(by_source):
        source_train, source_test = _split_one_source(by_source[source], test_fraction, rng)
        train += source_train
        test += source_test
    return train, test
