"""Small real datasets (from the sample cast's scripts) in the dataset-folder format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CAST = ROOT / "packages" / "core" / "src" / "serifu" / "cast"
LINE = re.compile(r"^【(?P<speaker>[^】]+)】「(?P<text>.*)」$")


def cast_pairs(
    char_id: str = "rei", speaker: str = "玲", limit: int = 40
) -> list[dict[str, object]]:
    """(protagonist line -> heroine reply) pairs read from a sample-cast script."""
    rows: list[dict[str, object]] = []
    prev: tuple[str, str] | None = None
    scene = 0
    for raw in (CAST / char_id / "script.txt").read_text(encoding="utf-8").splitlines():
        if raw.startswith("[scene]"):
            scene += 1
            prev = None
            continue
        m = LINE.match(raw.strip())
        if not m:
            continue
        spk, text = m["speaker"], m["text"]
        if spk == speaker and prev is not None and prev[0] != speaker:
            rows.append(
                {
                    "context": [],
                    "query": prev[1],
                    "query_speaker": prev[0],
                    "reply": text,
                    "character": speaker,
                    "scene": str(scene),
                }
            )
        prev = (spk, text)
    return rows[:limit]


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
