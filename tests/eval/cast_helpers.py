"""Test helper: a minimal reader of the sample cast's script format (cast/FORMAT.md)."""

from __future__ import annotations

import re
from pathlib import Path

from serifu.evaluation.splits import LabeledLine

CAST = Path(__file__).resolve().parents[2] / "packages" / "core" / "src" / "serifu" / "cast"
_SPOKEN = re.compile(r"^【(?P<speaker>[^】]+)】「(?P<text>.*)」\s*$")


def cast_lines(cast_dir: Path = CAST) -> list[LabeledLine]:
    """Every heroine's own lines (protagonist excluded), labelled by folder id."""
    import tomllib

    lines = []
    for folder in sorted(p for p in cast_dir.iterdir() if (p / "script.txt").is_file()):
        card = tomllib.loads((folder / "card.toml").read_text(encoding="utf-8"))
        scene = 0
        for raw in (folder / "script.txt").read_text(encoding="utf-8").splitlines():
            if raw.startswith("[scene]"):
                scene += 1
                continue
            match = _SPOKEN.match(raw.strip())
            if match and match["speaker"] == card["short_name"]:
                lines.append(LabeledLine(match["text"], folder.name, str(folder), scene))
    return lines
