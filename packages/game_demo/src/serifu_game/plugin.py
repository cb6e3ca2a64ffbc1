"""Entry point ``serifu = { game = "serifu_game.plugin" }``: adds ``serifu play``."""

from __future__ import annotations

import typer

from serifu.hookspecs import hookimpl


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    @cli.command("play")
    def play() -> None:
        """Play the dating-sim with a tuned heroine as NPC."""
        typer.echo("The game is not built yet.")
