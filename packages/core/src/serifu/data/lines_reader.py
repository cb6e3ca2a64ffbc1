"""The ``lines`` reader: one spoken line per row, the report's input format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serifu.data.options import parse_options
from serifu.kinds import Utterance


class LinesOptions(BaseModel):
    """Options of the ``lines`` reader."""

    model_config = ConfigDict(extra="forbid")
    speaker: str = Field(default="", description="Speaker name recorded for every line.")
    blank_line_scenes: bool = Field(
        default=False, description="A blank line starts a new scene (else the file is one scene)."
    )


class LinesReader:
    """Data source ``lines``: every non-blank row is one line, kept exactly as written."""

    id = "lines"
    description = "one spoken line per row (the report's input); no speakers"
    has_speakers = False
    options_model = LinesOptions

    def read(self, text: str, *, path: Path, options: Mapping[str, Any]) -> list[Utterance]:
        opts = parse_options(LinesOptions, options, self.id)
        out: list[Utterance] = []
        scene = 0
        for lineno, row in enumerate(text.split("\n"), start=1):
            if not row.strip():
                if opts.blank_line_scenes and out and out[-1].scene == scene:
                    scene += 1
                continue
            out.append(Utterance(opts.speaker, row, scene, lineno, str(path)))
        return out
