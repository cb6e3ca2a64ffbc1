"""``serifu config``: the JSON schema, and checking a config file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from serifu.config import config_schema, load_config

app = typer.Typer(help="Project configuration (serifu.toml).", no_args_is_help=True)


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of serifu.toml."""
    typer.echo(config_schema())


@app.command("show")
def show(
    config: Path | None = typer.Option(
        None, "--config", help="Config file (default ./serifu.toml)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override KEY=VALUE, e.g. train.epochs=2."
    ),
) -> None:
    """Validate a config file and print the resolved configuration as JSON."""
    cfg = load_config(config, overrides)
    typer.echo(json.dumps(cfg.model_dump(mode="json"), ensure_ascii=False, indent=2))
