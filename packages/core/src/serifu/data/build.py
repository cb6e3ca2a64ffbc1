"""Building a dataset folder: ``DatasetDict.save_to_disk`` + ``build.json``, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serifu.config.data import DataConfig
from serifu.data.cleaning import Cleaner
from serifu.data.dialogue import make_pairs, scene_key
from serifu.data.io import check_speaker, get_source, read_file
from serifu.data.splits import SPLITS, split_by_scene
from serifu.errors import SerifuError
from serifu.kinds import Utterance

BUILD_JSON = "build.json"


@dataclass
class BuildResult:
    """What was written: the folder, examples per split, rule counts, and build.json's content."""

    out: Path
    splits: dict[str, int]
    rules: dict[str, dict[str, Any]]
    info: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """The ``--json`` output of ``serifu data build``."""
        return {"out": str(self.out), "splits": self.splits, "rules": self.rules}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def length_stats(lengths: Sequence[int]) -> dict[str, float | int]:
    if not lengths:
        return {"count": 0}
    return {
        "count": len(lengths),
        "min": min(lengths),
        "max": max(lengths),
        "mean": round(statistics.fmean(lengths), 2),
        "median": statistics.median(lengths),
    }


def cleaner_for(config: DataConfig) -> Cleaner:
    return Cleaner.build(
        config.preset,
        nfkc=config.nfkc,
        drop_directions=config.drop_directions,
        min_chars=config.min_chars,
        max_chars=config.max_chars,
        dedupe=config.dedupe,
    )


def _rows(
    utterances: list[Utterance], speaker: str | None, config: DataConfig, has_speakers: bool
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, int]]:
    """Dataset rows (in file order), rule reports, and counts."""
    cleaner = cleaner_for(config)
    if config.format == "dialogue":
        assert speaker is not None
        result = make_pairs(
            utterances, speaker, context_lines=config.context_lines, cleaner=cleaner
        )
        rows = [p.to_row() | {"source": "real"} for p in result.pairs]
        counts = {"pairs": len(rows), "pairs_dropped_for_query": result.dropped_query}
        return rows, result.rules, counts
    chosen = [u for u in utterances if speaker is None or not has_speakers or u.speaker == speaker]
    cleaned = cleaner.run([u.text for u in chosen])
    rows = [
        {"text": text, "speaker": speaker or chosen[i].speaker, "scene": scene_key(chosen[i])}
        for i, text in zip(cleaned.kept, cleaned.texts, strict=True)
    ]
    return rows, cleaned.rules, {"lines": len(rows)}


def _features(fmt: str) -> Any:
    from datasets import Features, Sequence, Value

    if fmt == "dialogue":
        return Features(
            {
                "context": Sequence(Value("string")),
                "query": Value("string"),
                "query_speaker": Value("string"),
                "reply": Value("string"),
                "character": Value("string"),
                "scene": Value("string"),
                "source": Value("string"),
            }
        )
    return Features({"text": Value("string"), "speaker": Value("string"), "scene": Value("string")})


def build_dataset(
    paths: Sequence[Path | str],
    out: Path | str,
    *,
    source: str,
    speaker: str | None = None,
    config: DataConfig | None = None,
    options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
    character_id: str | None = None,
    force: bool = False,
    max_line_chars: int | None = None,
) -> BuildResult:
    """Read ``paths`` with data source ``source``, clean, split by scene and write ``out``.

    ``speaker`` is the character whose lines (format ``lines``) or replies (format
    ``dialogue``) are kept; it is required when the source has speakers. ``config``
    gives the format, cleaning and split settings. Nothing is left in ``out`` on error.
    ``out`` is replaced only when :func:`serifu.fsutil.check_output_dir` allows it (a
    folder Serifu wrote, never an input; ``force`` replaces a non-empty folder of yours).
    Lines longer than ``max_line_chars`` are an error (see :func:`serifu.data.io.read_file`).
    """
    from serifu.fsutil import check_output_dir

    config = config or DataConfig()
    out = check_output_dir(out, inputs=paths, force=force, kind="dataset")
    by_split, info = plan_dataset(
        paths,
        source=source,
        speaker=speaker,
        config=config,
        options=options,
        encoding=encoding,
        character_id=character_id,
        max_line_chars=max_line_chars,
    )
    _write(out, by_split, info, config, inputs=paths, force=force)
    return BuildResult(out, info["splits"], info["rules"], info)


def plan_dataset(
    paths: Sequence[Path | str],
    *,
    source: str,
    speaker: str | None = None,
    config: DataConfig | None = None,
    options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
    character_id: str | None = None,
    max_line_chars: int | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """What :func:`build_dataset` would write, in memory: rows per split and build.json."""
    config = config or DataConfig()
    reader = get_source(source)
    if reader.has_speakers and not speaker:
        raise SerifuError(f"data source {source!r} has speakers: name the character with --speaker")
    if config.format == "dialogue" and not reader.has_speakers:
        raise SerifuError(
            f"format 'dialogue' needs a data source with speakers; {source!r} has none (use --format lines)"
        )
    if not paths:
        raise SerifuError("no input files given")
    utterances: list[Utterance] = []
    sources_info = []
    for path in paths:
        utts, used_encoding = read_file(
            path, reader, options, encoding, max_line_chars=max_line_chars
        )
        utterances.extend(utts)
        sources_info.append(
            {
                "path": str(path),
                "sha256": sha256_file(Path(path)),
                "encoding": used_encoding,
                "utterances": len(utts),
            }
        )
    if reader.has_speakers:
        assert speaker is not None
        check_speaker(utterances, speaker)
    rows, rules, counts = _rows(utterances, speaker, config, reader.has_speakers)
    if not rows:
        raise SerifuError(
            f"no examples left for {speaker or 'the lines'!r} after cleaning "
            f"(format {config.format!r}); see the rule counts with --preset none"
        )
    try:
        plan = split_by_scene(
            [r["scene"] for r in rows],
            validation_fraction=config.validation_fraction,
            test_fraction=config.test_fraction,
            seed=config.seed,
            fold=(config.fold, config.folds) if config.folds else None,
        )
    except ValueError as exc:  # fewer scenes than folds
        raise SerifuError(f"cannot split {speaker or 'the lines'!r} into folds: {exc}") from None
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row, split in zip(rows, plan.assignment, strict=True):
        by_split[split].append(row)
    augmented = _augment(by_split["train"], config, character_id, speaker, utterances)
    by_split["train"] += augmented
    if augmented:
        counts["augmented"] = len(augmented)
    text_key = "reply" if config.format == "dialogue" else "text"
    info: dict[str, Any] = {
        "format": config.format,
        "character": speaker,
        "character_id": character_id,
        "source": source,
        "sources": sources_info,
        "options": {"reader": dict(options or {}), "encoding": encoding, **config.model_dump()},
        "rules": rules,
        "splits": {s: len(v) for s, v in by_split.items()},
        "split_unit": plan.unit,
        "scenes": {s: len({r["scene"] for r in v}) for s, v in by_split.items()},
        "counts": {"utterances": len(utterances), **counts},
        "lengths": {s: length_stats([len(r[text_key]) for r in v]) for s, v in by_split.items()},
    }
    return by_split, info


def _augment(
    train: list[dict[str, Any]],
    config: DataConfig,
    character_id: str | None,
    speaker: str | None,
    utterances: list[Utterance],
) -> list[dict[str, Any]]:
    """Profile Q→A rows for a character card (``config.augment`` per real training pair), in
    the voice of her lines in the training scenes only: her held-out scenes' openers and
    endings must not reach training through the answers."""
    if config.augment <= 0:
        return []
    if config.format != "dialogue" or not character_id:
        raise SerifuError(
            "--augment needs format 'dialogue' and a character card (build with --character)"
        )
    from serifu import plugins
    from serifu.data.augment import augment_pairs

    card = plugins.get_character(character_id).card()
    scenes = {row["scene"] for row in train}
    lines = [u.text for u in utterances if u.speaker == speaker and scene_key(u) in scenes]
    n = round(config.augment * len(train))
    return augment_pairs(card, lines, n=n, seed=config.seed, speaker=speaker)


def _write(
    out: Path,
    by_split: dict[str, list[dict[str, Any]]],
    info: dict[str, Any],
    config: DataConfig,
    *,
    inputs: Sequence[Path | str] = (),
    force: bool = False,
) -> None:
    from datasets import Dataset, DatasetDict
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    from serifu.fsutil import atomic_output_dir

    features = _features(config.format)
    columns = list(features)
    dd = DatasetDict(
        {
            split: Dataset.from_dict({c: [r[c] for r in rows] for c in columns}, features=features)
            for split, rows in by_split.items()
        }
    )
    bars_were_on = not are_progress_bars_disabled()
    disable_progress_bars()
    try:
        with atomic_output_dir(out, kind="dataset", inputs=inputs, force=force) as tmp:
            _save(tmp, dd, by_split, info, config)
    finally:
        if bars_were_on:
            enable_progress_bars()


def _save(
    tmp: Path,
    dd: Any,
    by_split: dict[str, list[dict[str, Any]]],
    info: dict[str, Any],
    config: DataConfig,
) -> None:
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; give it a normal folder's mode
    dd.save_to_disk(str(tmp), num_shards={split: 1 for split in dd})  # 1: empty splits load too
    if config.jsonl:
        for split, rows in by_split.items():
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            (tmp / f"{split}.jsonl").write_text(text, encoding="utf-8")
    (tmp / BUILD_JSON).write_text(
        json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


def build_character_dataset(
    character_id: str,
    out: Path | str,
    *,
    config: DataConfig | None = None,
    force: bool = False,
) -> BuildResult:
    """Build from a registered character pack's own scripts (speaker = the card's short name)."""
    from serifu import plugins

    pack = plugins.get_character(character_id)
    card = pack.card()
    return build_dataset(
        pack.scripts,
        out,
        source=pack.source,
        speaker=card.short_name,
        config=config,
        character_id=character_id,
        force=force,
    )


def load_build_info(folder: Path | str) -> dict[str, Any]:
    """``build.json`` of a dataset folder (a :class:`SerifuError` when it is not one)."""
    path = Path(folder) / BUILD_JSON
    if not Path(folder).is_dir():
        raise SerifuError(
            "no such dataset folder"
            if not Path(folder).exists()
            else "is a file, not a dataset folder",
            path=folder,
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SerifuError(
            "not a Serifu dataset folder (no build.json); build one with `serifu data build`",
            path=folder,
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise SerifuError(
            f"build.json is not valid JSON ({why}); the dataset folder is damaged, "
            "rebuild it with `serifu data build`",
            path=path,
        ) from None
    except OSError as exc:
        raise SerifuError(f"cannot read build.json ({exc.strerror or exc})", path=path) from None
    if not isinstance(info, dict) or info.get("format") not in ("lines", "dialogue"):
        raise SerifuError(
            "build.json is damaged (it must be an object whose format is lines or dialogue); "
            "rebuild the dataset with `serifu data build`",
            path=path,
        )
    return info
