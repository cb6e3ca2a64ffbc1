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
MAX_LINE_CHARS = typer.Option(
    None,
    "--max-line-chars",
    min=1,
    help="Longest line or spoken line accepted, in characters (default 20000).",
)
FORCE = typer.Option(
    False,
    "--force",
    help="Replace --out even when it is a non-empty folder Serifu did not write "
    "(never an input, the current folder or home).",
)


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
    max_line_chars: int | None = MAX_LINE_CHARS,
    as_json: bool = AS_JSON,
) -> None:
    """List the speakers of script files with their number of lines, most first."""
    from serifu.data.io import read_utterances, speaker_counts

    utterances = read_utterances(
        files or [], source, parse_reader_options(option), encoding, max_line_chars=max_line_chars
    )
    rows = [{"name": name, "lines": n} for name, n in speaker_counts(utterances)]
    if as_json:
        _echo_json({"speakers": rows})
        return
    for row in rows:
        typer.echo(f"{row['lines']:>6}  {row['name']}")


@app.command("build")
def build(
    files: list[Path] = FILES,
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output dataset folder: created, or replaced atomically if Serifu wrote it.",
    ),
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
    fold: str | None = typer.Option(
        None,
        "--fold",
        help="I/K: hold out fold I of a K-fold split by scene (cross-validation; I from 0).",
    ),
    jsonl: bool = typer.Option(False, "--jsonl", help="Also write <split>.jsonl files."),
    augment: float | None = typer.Option(
        None,
        "--augment",
        help="Add R profile question→answer pairs per real training pair (needs --character).",
    ),
    option: list[str] = OPTION,
    encoding: str | None = ENCODING,
    config: Path | None = typer.Option(
        None, "--config", help="serifu.toml to read [data] defaults from."
    ),
    max_line_chars: int | None = MAX_LINE_CHARS,
    force: bool = FORCE,
    as_json: bool = AS_JSON,
) -> None:
    """Build a dataset (lines or dialogue pairs) for one character."""
    from serifu.config import load_config
    from serifu.data.build import build_character_dataset, build_dataset

    overrides = {
        "format": fmt,
        "preset": preset,
        "context_lines": context_lines,
        "seed": seed,
        "augment": augment,
        **_fold_option(fold),
    }
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
        result = build_character_dataset(character, out, config=data_config, force=force)
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
            force=force,
            max_line_chars=max_line_chars,
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


def _fold_option(text: str | None) -> dict[str, int]:
    """``--fold I/K`` as ``data.fold`` and ``data.folds``."""
    if text is None:
        return {}
    i, _, k = text.partition("/")
    if not (i.isdigit() and k.isdigit()) or int(k) < 2 or int(i) >= int(k):
        raise SerifuError(f"--fold {text!r}: write I/K with K >= 2 and 0 <= I < K (e.g. 0/5)")
    return {"fold": int(i), "folds": int(k)}


@app.command("augment")
def augment_cmd(
    character: str = typer.Option(..., "--character", help="A registered character pack."),
    n: int = typer.Option(40, "--n", min=1, max=100000, help="How many pairs to write."),
    seed: int = typer.Option(0, "--seed", help="Seed of the choices."),
    as_json: bool = AS_JSON,
) -> None:
    """Show profile question→answer pairs written from her card, in her voice (JSONL with --json).

    To train on them: `serifu data build --character ID --augment R` mixes them into the
    training split (R per real pair, column `source` = real / augmented)."""
    from serifu import plugins
    from serifu.data.augment import augment_pairs
    from serifu.data.characters import character_utterances

    pack = plugins.get_character(character)
    card = pack.card()
    lines = [u.text for u in character_utterances(pack) if u.speaker == card.short_name]
    rows = augment_pairs(card, lines, n=n, seed=seed, speaker=card.short_name)
    for row in rows:
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            typer.echo(f"{row['query']}\t{row['reply']}")


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


@app.command("export")
def export(
    folder: Path = typer.Argument(..., help="A dialogue dataset folder from `serifu data build`."),
    out: Path = typer.Option(..., "--out", help="Output folder: one <split>.jsonl per split."),
    fmt: str = typer.Option("messages", "--format", help="messages (OpenAI-style chat JSONL)."),
    system_prompt: bool = typer.Option(
        True, "--system-prompt/--no-system-prompt", help="Start each row with her profile prompt."
    ),
    force: bool = FORCE,
    as_json: bool = AS_JSON,
) -> None:
    """Export a dialogue dataset as chat `messages` JSONL (TRL, axolotl, OpenAI fine-tuning)."""
    from serifu.data.messages import FORMATS, export_messages

    if fmt not in FORMATS:
        raise SerifuError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    result = export_messages(folder, out, system_prompt=system_prompt, force=force)
    if as_json:
        _echo_json(result)
        return
    splits = ", ".join(f"{k} {v}" for k, v in result["splits"].items())
    typer.echo(f"wrote {result['out']} (messages): {splits}")


def register(cli: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    cli.add_typer(app, name="data")
