"""Which held-out pairs an evaluation may score, and whose: never another character's data,
never the adapter's own training replies.

``serifu eval`` calls :func:`check_characters` (dataset, adapter and ``--character`` /
``--speaker`` must name the same character) and, when perplexity runs on an adapter
without ``--data``, :func:`adapter_heldout` (the ``test`` split of the dataset the adapter
was trained on, as recorded in its ``serifu.json``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serifu.errors import SerifuError
from serifu.evaluation.reference import HELD_OUT

if TYPE_CHECKING:
    from serifu.evaluation.run import Reference
    from serifu.evaluation.runner import EvalRequest


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file is a SerifuError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SerifuError(f"no {path.name}: not {what}", path=path.parent) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SerifuError(f"{path.name} is damaged ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise SerifuError(f"{path.name} is damaged (not a JSON object)", path=path)
    return data


def adapter_info(adapter: Path | None) -> dict[str, Any] | None:
    """``serifu.json`` of an adapter folder; None without an adapter or for a foreign
    adapter (no serifu.json: what it was trained on is unknown)."""
    if adapter is None:
        return None
    if not Path(adapter).is_dir():
        what = (
            "is a file, not an adapter folder"
            if Path(adapter).exists()
            else "no such adapter folder"
        )
        raise SerifuError(what, path=adapter)
    if not (Path(adapter) / "serifu.json").exists():
        return None
    return read_json_file(Path(adapter) / "serifu.json", "an adapter written by `serifu train`")


def dataset_info(data: Path | None) -> dict[str, Any] | None:
    """``build.json`` of a dataset folder, or None when there is none."""
    if data is None:
        return None
    from serifu.data.build import load_build_info

    return load_build_info(data)


def _trained_on(info: dict[str, Any] | None) -> dict[str, Any]:
    dataset = (info or {}).get("dataset")
    return dataset if isinstance(dataset, dict) else {}


def check_characters(
    *,
    character: str | None,
    speaker: str | None,
    data: dict[str, Any] | None,
    adapter: dict[str, Any] | None,
) -> None:
    """Refuse to score one character's adapter or data as another's.

    ``character``: ``--character`` (a character id); ``speaker``: ``--speaker`` (script
    mode); ``data``: the ``--data`` dataset's build.json; ``adapter``: the adapter's
    serifu.json. Every id or speaker name that two of them record must agree.
    """
    trained = _trained_on(adapter)
    ids = [
        ("--character", character),
        ("the --data dataset", (data or {}).get("character_id")),
        ("the adapter's training data", trained.get("character_id")),
    ]
    names = [
        ("--speaker", speaker),
        ("the --data dataset", (data or {}).get("character")),
        ("the adapter's training data", trained.get("character")),
    ]
    for kind, pairs in (("character", ids), ("speaker", names)):
        known = [(where, value) for where, value in pairs if value]
        for where, value in known[1:]:
            if value != known[0][1]:
                raise SerifuError(
                    f"{kind} mismatch: {known[0][0]} is {known[0][1]!r} but {where} is "
                    f"{value!r}; scoring one character's adapter or data as another's gives "
                    "meaningless numbers. Use the matching --data / --adapter / --character"
                )


@dataclass
class Heldout:
    """Held-out (query, reply) pairs and where they come from (for the report)."""

    pairs: list[tuple[str, str]]
    description: str
    data: Path | None = None
    """The dataset folder they were read from, when it exists."""
    selection_pairs: list[tuple[str, str]] = field(default_factory=list)
    """Validation and test pairs (coherence), when rebuilt."""


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _split_pairs(
    by_split: dict[str, list[dict[str, Any]]], splits: Sequence[str] = ("test",)
) -> list[tuple[str, str]]:
    return [
        (r["query"], r["reply"])
        for name in splits
        for r in by_split.get(name, [])
        if r["reply"].strip()
    ]


def adapter_heldout(
    adapter: Path,
    info: dict[str, Any],
    *,
    character: str | None = None,
    script: Sequence[Path] = (),
    source: str | None = None,
) -> Heldout:
    """The ``test`` split of the dataset the adapter was trained on (from its serifu.json).

    1. The recorded dataset folder, if it still exists with the recorded build.json hash.
    2. Else the dataset rebuilt in memory from the character's scripts (``character``) or
       ``script``/``source``, with the build options recorded in serifu.json (default
       settings when none are recorded), accepted only if its split sizes equal the
       recorded ones (``dataset.splits``, else ``train_examples``/``validation_examples``).
    3. Else a :class:`SerifuError` asking for ``--data``: a guessed split could hold the
       adapter's own training replies.
    """
    from serifu.config.data import DataConfig
    from serifu.data.build import plan_dataset

    trained = _trained_on(info)
    if trained.get("format") not in (None, "dialogue"):
        raise SerifuError(
            f"the adapter was trained on a {trained.get('format')!r} dataset; perplexity needs "
            "dialogue pairs: pass --data with a dialogue dataset of the same character",
            path=adapter,
        )
    recorded = Path(str(trained["path"])) if trained.get("path") else None
    sha = trained.get("build_sha256")
    if recorded is not None and sha and _sha256(recorded / "build.json") == sha:
        from serifu.evaluation.reference import dataset_pairs

        return Heldout(
            dataset_pairs(recorded),
            f"test split of {recorded} (the adapter's dataset)",
            recorded,
        )
    recorded_options = trained.get("options")
    options: dict[str, Any] = recorded_options if isinstance(recorded_options, dict) else {}
    settings = {k: v for k, v in options.items() if k in DataConfig.model_fields}
    try:
        config = DataConfig(**{**settings, "format": "dialogue", "jsonl": False})
    except ValueError as exc:  # pydantic's ValidationError
        raise SerifuError(f"serifu.json: damaged dataset options ({exc})", path=adapter) from None
    if character:
        from serifu import plugins

        pack = plugins.get_character(character)
        paths: list[Path] = list(pack.scripts)
        src, speaker = pack.source, pack.card().short_name
    elif script and source and trained.get("character"):
        paths, src, speaker = list(script), source, str(trained["character"])
    else:
        paths, src, speaker = [], "", ""
    ask = (
        f"pass --data with the dataset it was trained on ({recorded or 'path not recorded'}), "
        "or leave out the perplexity evaluator"
    )
    if not paths:
        raise SerifuError(
            f"cannot tell which replies the adapter was trained on: its dataset is gone; {ask}",
            path=adapter,
        )
    by_split, _ = plan_dataset(
        paths,
        source=src,
        speaker=speaker,
        config=config,
        options=options.get("reader") if isinstance(options.get("reader"), dict) else None,
        encoding=options.get("encoding") if isinstance(options.get("encoding"), str) else None,
        character_id=character if (character and config.augment > 0) else None,
    )
    sizes = {split: len(rows) for split, rows in by_split.items()}
    splits = trained.get("splits")  # build.json's split sizes, when recorded
    n_train, n_val = trained.get("train_examples"), trained.get("validation_examples")
    if isinstance(splits, dict):
        same = all(splits.get(split) == n for split, n in sizes.items())
    else:  # older serifu.json: examples that survived encoding (almost always every row)
        same = n_train == sizes["train"] and (not n_val or n_val == sizes["validation"])
    if not same:
        raise SerifuError(
            f"the adapter's dataset ({recorded or 'not recorded'}) is gone, and rebuilding it "
            f"{'with the recorded' if settings else 'with default'} settings gives "
            f"split sizes {sizes}, not the recorded "
            f"{splits if isinstance(splits, dict) else {'train': n_train, 'validation': n_val}}, "
            f"so its held-out split cannot be reproduced; {ask}",
            path=adapter,
        )
    how = "recorded" if settings else "default"
    return Heldout(
        _split_pairs(by_split),
        f"test split rebuilt with the adapter's {how} data settings",
        selection_pairs=_split_pairs(by_split, HELD_OUT),
    )


def checked_reference(request: EvalRequest) -> Reference | None:
    """Run the checks above for one evaluation; the reference it must use, or None.

    Dataset, adapter and character must agree (:func:`check_characters`). With an
    adapter that has a serifu.json, no ``data`` and perplexity selected, the held-out
    pairs are its own dataset's test split (:func:`adapter_heldout`): ``request.data`` is
    set to that folder when it exists (returns None: the runner reads it), else the
    returned reference carries the rebuilt pairs. Pass the result to
    ``evaluate(request, reference)``.
    """
    if request.character and request.script:
        raise SerifuError(
            "give either a registered character or a script's speaker to evaluate, not both"
        )
    adapter = adapter_info(request.adapter)
    speaker = request.speaker
    if request.character and speaker is None:  # her speaker name, to compare with script data
        from serifu import plugins

        speaker = plugins.get_character(request.character).card().short_name
    check_characters(
        character=request.character,
        speaker=speaker,
        data=dataset_info(request.data),
        adapter=adapter,
    )
    scores_perplexity = request.evaluators is None or "perplexity" in request.evaluators
    if request.adapter is None or adapter is None or request.data is not None:
        return None
    if not scores_perplexity:
        return None
    held = adapter_heldout(
        request.adapter,
        adapter,
        character=request.character,
        script=request.script,
        source=request.source,
    )
    if held.data is not None:
        request.data = held.data
        return None
    from serifu.evaluation.runner import _reference

    reference = _reference(request)
    reference.heldout_pairs = held.pairs
    reference.selection_pairs = held.selection_pairs
    reference.description += f"; held-out pairs: {held.description}"
    return reference
