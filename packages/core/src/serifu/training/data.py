"""Reading a dataset folder written by ``serifu data build`` (DatasetDict + ``build.json``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError


@dataclass
class DatasetFolder:
    path: Path
    build: dict[str, Any]
    build_sha256: str
    splits: Any
    """``datasets.DatasetDict`` with ``train`` (and usually ``validation``, ``test``)."""

    @property
    def format(self) -> str:
        return str(self.build.get("format", "lines"))

    def system_prompt(self) -> str | None:
        """The character's profile prompt (from ``build.json``'s ``character_id``), if any."""
        char_id = self.build.get("character_id")
        if not char_id:
            return None
        from serifu import plugins
        from serifu.characters import system_prompt

        return system_prompt(plugins.get_character(char_id).card())


def load_dataset_folder(path: Path) -> DatasetFolder:
    path = Path(path)
    build_file = path / "build.json"
    if not build_file.is_file():
        raise SerifuError(
            "not a Serifu dataset folder (no build.json); build one with `serifu data build`",
            path=path,
        )
    raw = build_file.read_bytes()
    try:
        build = json.loads(raw)
    except ValueError as exc:
        raise SerifuError(f"build.json is not valid JSON ({exc})", path=build_file) from None
    if build.get("format") not in ("lines", "dialogue"):
        raise SerifuError(
            f"build.json: unknown format {build.get('format')!r} (lines or dialogue)",
            path=build_file,
        )
    from datasets import load_from_disk

    try:
        splits = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise SerifuError(f"could not read the dataset ({exc})", path=path) from None
    if "train" not in splits or len(splits["train"]) == 0:
        raise SerifuError("the dataset has no training examples", path=path)
    return DatasetFolder(path, build, hashlib.sha256(raw).hexdigest(), splits)
