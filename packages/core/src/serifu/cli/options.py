"""Options more than one command takes."""

from __future__ import annotations

import typer

NO_REPEAT_NGRAM = typer.Option(
    None,
    "--no-repeat-ngram",
    min=0,
    help="A reply never repeats an N-token piece of itself (stops loops); 0: off; "
    "default: the model's.",
)
