"""Small real datasets (from the sample cast's scripts) in the dataset-folder format."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def offline_env() -> Iterator[None]:
    """The environment tests/conftest.py gives each test, for module-scoped fixtures
    (which are set up before it): the shared test model cache, no hub."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERIFU_CACHE", os.environ.get("SERIFU_TEST_CACHE", str(ROOT / ".cache-test")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


def cast_pairs(char_id: str = "rei", limit: int = 40) -> list[dict[str, object]]:
    """(protagonist line -> heroine reply) rows of a sample heroine, from the real data module."""
    from serifu import plugins
    from serifu.data.characters import character_pairs

    return [p.to_row() for p in character_pairs(plugins.get_character(char_id))][:limit]


def write_dataset(
    folder: Path, fmt: str, rows: list[dict[str, object]], character_id: str | None = "rei"
) -> Path:
    from datasets import Dataset, DatasetDict

    n_val = max(1, len(rows) // 8)
    dd = DatasetDict(
        {"train": Dataset.from_list(rows[n_val:]), "validation": Dataset.from_list(rows[:n_val])}
    )
    dd.save_to_disk(str(folder))
    build = {
        "format": fmt,
        "character": "玲",
        "character_id": character_id,
        "sources": [],
        "options": {},
    }
    (folder / "build.json").write_text(json.dumps(build, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def dialogue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("dialogue"), "dialogue", cast_pairs(limit=40))


@pytest.fixture(scope="session")
def lines_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [
        {"text": str(r["reply"]) + "\n", "speaker": "玲", "scene": r["scene"]}
        for r in cast_pairs(limit=40)
    ]
    return write_dataset(tmp_path_factory.mktemp("lines"), "lines", rows)


@pytest.fixture
def dataset_writer() -> Callable[..., Path]:
    """:func:`write_dataset`, for tests that build their own (test modules cannot import
    this conftest)."""
    return write_dataset
