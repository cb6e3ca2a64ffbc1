"""``serifu characters``: the registered character packs."""

from __future__ import annotations

import json

import typer

from serifu import plugins

app = typer.Typer(help="Registered characters (sample cast and plugins).", no_args_is_help=True)


@app.command("list")
def list_characters(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List characters with their name and number of spoken lines."""
    from serifu.data.characters import count_character_lines

    rows = []
    for reg in plugins.characters().values():
        card = reg.item.card()
        rows.append(
            {
                "id": reg.id,
                "name": card.name,
                "lines": count_character_lines(reg.item),
                "provider": reg.provider.name,
            }
        )
    if as_json:
        typer.echo(
            json.dumps(
                [{k: r[k] for k in ("id", "name", "lines")} for r in rows],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for r in rows:
        typer.echo(f"{r['id']:<10} {r['name']:<12} {r['lines']:>5} lines  ({r['provider']})")


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="characters")
