"""Built-in CLI commands, added through ``register_commands`` like any plugin's."""

from __future__ import annotations

import typer

from serifu.hookspecs import hookimpl


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from serifu.cli import characters_cmd, data, evaluate, quickstart, serve, train
    from serifu.cli.config_cmd import app as config_app
    from serifu.cli.doctor import doctor
    from serifu.cli.plugins_cmd import plugins_command

    cli.command("plugins")(plugins_command)
    cli.command("doctor")(doctor)
    cli.add_typer(config_app, name="config")
    data.register(cli)
    characters_cmd.register(cli)
    train.register(cli)
    evaluate.register(cli)
    quickstart.register(cli)
    serve.register(cli)
