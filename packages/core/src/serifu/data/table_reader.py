"""The ``table`` reader: CSV, TSV or JSONL rows with speaker and text columns."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serifu.data.options import parse_options
from serifu.errors import SerifuError
from serifu.kinds import Utterance


class TableOptions(BaseModel):
    """Options of the ``table`` reader (column names are configurable)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["auto", "csv", "tsv", "jsonl"] = Field(
        default="auto", description="Table format; auto goes by the file extension."
    )
    speaker_column: str = Field(default="speaker", description="Column holding the speaker.")
    text_column: str = Field(default="text", description="Column holding the spoken line.")
    scene_column: str = Field(
        default="scene", description="Optional scene column (used when present)."
    )
    line_column: str = Field(
        default="line", description="Optional line-id column (used when present)."
    )


def _table_format(path: Path, opts: TableOptions) -> str:
    if opts.format != "auto":
        return opts.format
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "tsv" if suffix in (".tsv", ".tab") else "csv"


def _rows(text: str, fmt: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs; JSONL rows must be objects."""
    if fmt == "jsonl":
        for lineno, raw in enumerate(text.split("\n"), start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SerifuError(f"not valid JSON ({exc.msg})", path=path, line=lineno) from None
            if not isinstance(row, dict):
                raise SerifuError("each JSONL row must be an object", path=path, line=lineno)
            yield lineno, row
        return
    # strict: an unterminated quote is an error instead of swallowing every row after it
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ",", strict=True)
    row_start = 1
    try:
        if reader.fieldnames is not None:  # reads the header row
            row_start = reader.line_num + 1
        width = len(reader.fieldnames or ())
        for row in reader:
            if None in row:  # DictReader's key for fields beyond the header's
                raise SerifuError(
                    f"this row has {width + len(row[None])} fields but the header has "
                    f"{width}, so a line would lose its end; an unquoted "
                    f"{'tab' if fmt == 'tsv' else 'comma'} in the text is the usual cause: "
                    'quote the text field ("…")',
                    path=path,
                    line=row_start,
                )
            yield row_start, row  # the line the row starts on
            row_start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise SerifuError(
                'a quoted field opened on this line is never closed (unterminated "), so '
                "it would swallow every row after it; close the quote, or write a literal "
                'quote inside a quoted field as ""',
                path=path,
                line=row_start,
            ) from None
        raise SerifuError(
            f"not valid {fmt.upper()} ({exc}); a quoted field must be followed by the "
            'delimiter, and a quote inside one is written ""',
            path=path,
            line=row_start,
        ) from None


class TableReader:
    """Data source ``table``."""

    id = "table"
    description = "CSV / TSV / JSONL with speaker and text columns (optional scene, line id)"
    has_speakers = True
    options_model = TableOptions

    def read(self, text: str, *, path: Path, options: Mapping[str, Any]) -> list[Utterance]:
        opts = parse_options(TableOptions, options, self.id)
        fmt = _table_format(path, opts)
        scenes: dict[str, int] = {}
        out: list[Utterance] = []
        for lineno, row in _rows(text, fmt, path):
            missing = [c for c in (opts.speaker_column, opts.text_column) if c not in row]
            if missing:
                have = ", ".join(repr(k) for k in row) or "none"
                raise SerifuError(
                    f"missing column(s) {', '.join(repr(c) for c in missing)}; the row has: {have}. "
                    "Name the columns with --option speaker_column=… / text_column=…",
                    path=path,
                    line=lineno,
                )
            short = [c for c in (opts.speaker_column, opts.text_column) if row[c] is None]
            if short:  # a CSV/TSV row that ends before a required column
                raise SerifuError(
                    f"this row ends before column(s) {', '.join(repr(c) for c in short)}; "
                    "every row needs a speaker and a text field (an empty line is written "
                    'as "")',
                    path=path,
                    line=lineno,
                )
            speaker, line_text = row[opts.speaker_column], row[opts.text_column]
            if line_text is None or str(line_text).strip() == "":
                continue
            scene = 0
            if row.get(opts.scene_column) not in (None, ""):
                scene = scenes.setdefault(str(row[opts.scene_column]), len(scenes) + 1)
            line = lineno
            raw_id = row.get(opts.line_column)
            if raw_id not in (None, "") and str(raw_id).isdigit():
                line = int(str(raw_id))
            out.append(
                Utterance(str(speaker or "").strip(), str(line_text), scene, line, str(path))
            )
        return out
