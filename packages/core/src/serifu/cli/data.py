"""``serifu data``: list speakers, build datasets, show dataset statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from serifu.errors import SerifuError

app = typer.Typer(help="Character data: speakers, datasets, statistics.", no_args_is_help=True)

FILES = typer.Argument(None, help="Script files.", show_default=False)
SOURCE = typer.Option(
    "lines",
    "--source",
    "-s",
    help="Data source: lines, table, aozora-play, script (or a plugin's).",
)
OPTION = typer.Option(
    [], "--option", "-o", help="Reader option KEY=VALUE (value read as TOML), repeatable."
)
ENCODING = typer.Option(
    None, "--encoding", help="File encoding (default: detect UTF-8 / Shift_JIS / EUC-JP)."
)
AS_JSON = typer.Option(False, "--json", help="Print JSON.")


def parse_reader_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` reader options; values are TOML (``aliases={かつら="桂"}``) or plain strings."""
    from serifu.config import parse_override

    options: dict[str, Any] = {}
    for item in items:
        key, value = parse_override(item)
        options[".".join(key)] = value
    return options


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.command("speakers")
def speakers(
    files: list[Path] = FILES,
    source: str = SOURCE,
    option: list[str] = OPTION,
    encoding: str | None = ENCODING,
    as_json: bool = AS_JSON,
) -> None:
    """List the speakers of script files with their number of lines, most first."""
    from serifu.data.io import read_utterances, speaker_counts

    utterances = read_utterances(files or [], source, parse_reader_options(option), encoding)
    rows = [{"name": name, "lines": n} for name, n in speaker_counts(utterances)]
    if as_json:
        _echo_json({"speakers": rows})
        return
    for row in rows:
        typer.echo(f"{row['lines']:>6}  {row['name']}")


@app.command("build")
def build(
    files: list[Path] = FILES,
    out: Path = typer.Option(..., "--out", help="Output dataset folder (replaced atomically)."),
    source: str = SOURCE,
    speaker: str | None = typer.Option(
        None, "--speaker", help="The character (needed when the source has speakers)."
    ),
    character: str | None = typer.Option(
        None, "--character", help="Build from a registered character pack instead of files."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="lines | dialogue (default from [data] in serifu.toml: dialogue)."
    ),
    preset: str | None = typer.Option(None, "--preset", help="Cleaning preset: report | none."),
    context_lines: int | None = typer.Option(
        None, "--context-lines", help="Dialogue: earlier lines kept as context."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the scene split."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Also write <split>.jsonl files."),
    option: list[str] = OPTION,
    encoding: str | None = ENCODING,
    config: Path | None = typer.Option(
        None, "--config", help="serifu.toml to read [data] defaults from."
    ),
    as_json: bool = AS_JSON,
) -> None:
    """Build a dataset (lines or dialogue pairs) for one character."""
    from serifu.config import load_config
    from serifu.data.build import build_character_dataset, build_dataset

    overrides = {"format": fmt, "preset": preset, "context_lines": context_lines, "seed": seed}
    flags = [
        f"data.{k}={json.dumps(v, ensure_ascii=False)}"
        for k, v in overrides.items()
        if v is not None
    ]
    if jsonl:
        flags.append("data.jsonl=true")
    data_config = load_config(config, flags).data
    if character is not None:
        if files:
            raise SerifuError("give either --character or script files, not both")
        result = build_character_dataset(character, out, config=data_config)
    else:
        if not files:
            raise SerifuError("no input files given (or use --character ID)")
        result = build_dataset(
            files,
            out,
            source=source,
            speaker=speaker,
            config=data_config,
            options=parse_reader_options(option),
            encoding=encoding,
        )
    if as_json:
        _echo_json(result.summary())
        return
    splits = ", ".join(f"{k} {v}" for k, v in result.splits.items())
    typer.echo(
        f"wrote {result.out} ({result.info['format']}, {result.info['character'] or 'all lines'}): {splits}"
    )
    for rule_id, report in result.rules.items():
        typer.echo(
            f"  {rule_id:<18} changed {report['changed']:>5}  dropped {report['dropped']:>5}"
        )


@app.command("stats")
def stats(
    folder: Path = typer.Argument(..., help="A dataset folder written by `serifu data build`."),
    as_json: bool = AS_JSON,
) -> None:
    """Counts, a length histogram, top sentence endings, the … rate and first-person pronouns."""
    from serifu.data.stats import dataset_stats, render_stats

    result = dataset_stats(folder)
    if as_json:
        _echo_json(result)
        return
    typer.echo(render_stats(result))


def register(cli: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    cli.add_typer(app, name="data")
