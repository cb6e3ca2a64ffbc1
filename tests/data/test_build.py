"""Dataset folders: columns, build.json, scene splits, atomic writes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.config.data import DataConfig
from serifu.data.build import build_dataset
from serifu.data.splits import split_by_scene
from serifu.errors import SerifuError


def _script(tmp_path: Path, scenes: int = 12) -> Path:
    lines = []
    for s in range(scenes):
        lines.append(f"[scene] 第{s}場")
        for i in range(4):
            lines.append(f"【主人公】「質問{s}-{i}」")
            lines.append(f"【茜】「答え@{s}-{i} やで」")
        lines.append(f"【茜】「gaiji独り言 {s}」")
    f = tmp_path / "script.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f


def test_dialogue_dataset_columns_context_and_build_json(tmp_path: Path) -> None:
    from datasets import load_from_disk

    src = _script(tmp_path)
    out = tmp_path / "ds"
    config = DataConfig(format="dialogue", context_lines=2, seed=3)
    result = build_dataset([src], out, source="script", speaker="茜", config=config)
    assert sum(result.splits.values()) == 48  # the monologue after 茜's own line is no pair
    dd = load_from_disk(str(out))
    assert set(dd) == {"train", "validation", "test"}
    row = next(r for r in dd["train"] if r["query"].endswith("-1"))
    k = row["query"].removeprefix("質問").split("-")[0]
    assert row["reply"] == f"答え{k}-1やで"
    assert row["context"] == [f"主人公「質問{k}-0」", f"茜「答え{k}-0やで」"]
    assert row["query_speaker"] == "主人公" and row["character"] == "茜"
    assert not row["reply"].endswith("\n") and "@" not in row["reply"]
    info = json.loads((out / "build.json").read_text(encoding="utf-8"))
    for key in (
        "format",
        "character",
        "character_id",
        "sources",
        "options",
        "rules",
        "splits",
        "lengths",
    ):
        assert key in info
    assert info["sources"][0]["sha256"] and info["character_id"] is None
    assert info["rules"]["remove_at"]["changed"] == 48
    assert "append_newline" not in info["rules"]
    # a scene never spans two splits
    scenes = {split: set(dd[split]["scene"]) for split in dd}
    assert not (scenes["train"] & scenes["test"]) and not (scenes["train"] & scenes["validation"])
    assert scenes["test"] and scenes["validation"]


def test_lines_dataset_and_seeded_reproducibility(tmp_path: Path) -> None:
    from datasets import load_from_disk

    src = _script(tmp_path)
    config = DataConfig(format="lines", seed=7)
    a = build_dataset([src], tmp_path / "a", source="script", speaker="茜", config=config)
    b = build_dataset([src], tmp_path / "b", source="script", speaker="茜", config=config)
    assert a.splits == b.splits and sum(a.splits.values()) == 60
    texts = load_from_disk(str(tmp_path / "a"))["train"]["text"]
    assert texts == load_from_disk(str(tmp_path / "b"))["train"]["text"]
    assert all(t.endswith("\n") and " " not in t and "gaiji" not in t for t in texts)
    other = split_by_scene([f"s{i}" for i in range(20)], seed=8).assignment
    assert other != split_by_scene([f"s{i}" for i in range(20)], seed=7).assignment


def test_sources_without_scenes_are_split_in_blocks(tmp_path: Path) -> None:
    f = tmp_path / "lines.txt"
    f.write_text("".join(f"行{i}@\n" for i in range(100)), encoding="utf-8")
    result = build_dataset([f], tmp_path / "out", source="lines", config=DataConfig(format="lines"))
    assert result.splits["validation"] > 0 and result.splits["test"] > 0
    assert "consecutive examples" in result.info["split_unit"]


def test_tiny_file_gives_loadable_empty_splits(tmp_path: Path) -> None:
    from datasets import load_from_disk

    f = tmp_path / "report.txt"
    f.write_text(
        "はい、参りましょう@\ngaiji髙gaiji橋さん、 おはよう\n//voice_031 落とす行\n",
        encoding="utf-8",
    )
    result = build_dataset([f], tmp_path / "out", source="lines", config=DataConfig(format="lines"))
    assert result.splits == {"train": 2, "validation": 0, "test": 0}
    dd = load_from_disk(str(tmp_path / "out"))
    assert dd["train"]["text"] == ["はい、参りましょう\n", "髙橋さん、おはよう\n"]
    assert len(dd["validation"]) == 0 and len(dd["test"]) == 0


def test_errors_leave_nothing_in_out(tmp_path: Path) -> None:
    src = _script(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(
        SerifuError, match=r"speaker '玲' has no lines; speakers found: 茜 \(60\), 主人公 \(48\)"
    ):
        build_dataset([src], out, source="script", speaker="玲")
    with pytest.raises(SerifuError, match="name the character with --speaker"):
        build_dataset([src], out, source="script")
    with pytest.raises(SerifuError, match="needs a data source with speakers"):
        build_dataset([src], out, source="lines", config=DataConfig(format="dialogue"))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["script.txt"]  # no temporary folder left


def test_rebuilding_replaces_the_folder(tmp_path: Path) -> None:
    src = _script(tmp_path)
    out = tmp_path / "out"
    config = DataConfig(format="lines", jsonl=True)
    build_dataset([src], out, source="script", speaker="茜", config=config)
    (out / "stale.txt").write_text("old", encoding="utf-8")  # a folder Serifu wrote earlier
    build_dataset([src], out, source="script", speaker="茜", config=config)
    assert not (out / "stale.txt").exists()
    assert {"build.json", "dataset_dict.json", "train", "train.jsonl"} <= {
        p.name for p in out.iterdir()
    }


def test_k_folds_hold_out_every_scene_once() -> None:
    scenes = [f"s{i // 3}" for i in range(3 * 23)]  # 23 scenes of 3 examples
    held: list[set[str]] = []
    for i in range(5):
        plan = split_by_scene(
            scenes, seed=4, fold=(i, 5), validation_fraction=0.1, test_fraction=0.3
        )
        out = {s for s, a in zip(scenes, plan.assignment, strict=True) if a != "train"}
        train = {s for s, a in zip(scenes, plan.assignment, strict=True) if a == "train"}
        assert not out & train and len(out) in (4, 5)
        test = {s for s, a in zip(scenes, plan.assignment, strict=True) if a == "test"}
        assert len(test) == round(0.75 * len(out))  # test : validation as 0.3 : 0.1
        held.append(out)
    assert set().union(*held) == set(scenes) and sum(map(len, held)) == 23
    with pytest.raises(ValueError, match="cannot be dealt"):
        split_by_scene(["a", "b", "c"], fold=(0, 4))


def test_fold_datasets_partition_her_pairs(tmp_path: Path) -> None:
    from datasets import load_from_disk

    src = _script(tmp_path)
    held: list[set[str]] = []
    for i in range(3):
        out = tmp_path / f"f{i}"
        result = build_dataset(
            [src], out, source="script", speaker="茜", config=DataConfig(folds=3, fold=i)
        )
        assert result.info["options"]["folds"] == 3 and result.info["options"]["fold"] == i
        dd = load_from_disk(str(out))
        out_pairs = {r for s in ("validation", "test") for r in dd[s]["reply"]}
        assert out_pairs and not out_pairs & set(dd["train"]["reply"])
        held.append(out_pairs)
    assert sum(map(len, held)) == len(set().union(*held)) == 48
    for bad in ({"folds": 3, "fold": 3}, {"folds": 1}, {"fold": 2}):  # fold 2 of no folds
        with pytest.raises(ValueError, match="fold"):
            DataConfig.model_validate(bad)
    with pytest.raises(SerifuError, match="cannot split"):
        build_dataset(
            [src], tmp_path / "x", source="script", speaker="茜", config=DataConfig(folds=20)
        )
