"""``serifu quickstart``: data -> 4-bit tuning -> evaluation -> game, on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def quickstart(
    character: str = typer.Option(
        "akane", "--character", help="Sample heroine (serifu characters list)."
    ),
    model: str = typer.Option(
        "", "--model", help="Base model id (default: the default base model, $SERIFU_MODEL)."
    ),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Output folder."),
    steps: int = typer.Option(40, "--steps", min=1, help="Training steps (8 replies each)."),
    limit: int = typer.Option(12, "--limit", min=0, help="Queries per evaluation (0: all 111)."),
    system_prompt: bool = typer.Option(
        False,
        "--system-prompt/--no-system-prompt",
        help="Train and evaluate with her profile prompt (slower on a CPU).",
    ),
    threads: int = typer.Option(
        0,
        "--threads",
        min=0,
        help="CPU threads for torch (0: $SERIFU_THREADS, else 1 — on 2-core machines one thread was fastest).",
    ),
    play: bool = typer.Option(
        True, "--play/--no-play", help="Open the game with the new adapter at the end."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Build a heroine's data, 4-bit-tune the default model on it, compare base vs tuned, then play."""
    import os

    from serifu import quickstart as qs

    qs.set_threads(threads or int(os.environ.get("SERIFU_THREADS", "1")))

    plan = qs.QuickstartPlan(
        character=character,
        model=model,
        out=out,
        steps=steps,
        limit=limit,
        system_prompt=system_prompt,
    )
    say = (lambda _msg: None) if as_json else typer.echo
    summary = qs.run(plan, say=say)
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    if play:
        typer.echo(f"Opening the game with {character} and the adapter in {summary['adapter']} ...")
        qs.play(character, plan.model, summary["adapter"])


def register(cli: typer.Typer) -> None:
    cli.command("quickstart")(quickstart)
