"""``serifu characters``: the registered character packs."""

from __future__ import annotations

import json
from pathlib import Path

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
                "lines": count_character_lines(reg.item) if reg.item.scripts else 0,
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


@app.command("import")
def import_character(
    file: Path = typer.Argument(..., help="A Character Card V2/V3 file: .png, .json or .charx."),
    into: Path | None = typer.Option(
        None,
        "--dir",
        help="Folder of packs (default: $SERIFU_CHARACTERS or ~/.config/serifu/characters).",
    ),
    card_id: str | None = typer.Option(None, "--id", help="Her id (default: from the card)."),
    force: bool = typer.Option(False, "--force", help="Replace a pack with the same id."),
) -> None:
    """Import a character card as a pack that data build, train, eval, play and serve accept."""
    from serifu.cards import import_card

    folder = import_card(file, into=into, card_id=card_id, force=force)
    plugins.reset()
    typer.echo(f"imported {folder.name} -> {folder}")
    if not (folder / "script.txt").is_file():
        typer.echo(
            "note: the card has no example dialogue (mes_example); put her lines in "
            f"{folder / 'script.txt'} (【名前】「…」 lines) before `serifu data build --character "
            f"{folder.name}`",
            err=True,
        )


@app.command("export")
def export_character(
    character: str = typer.Argument(..., help="Character id (see `serifu characters list`)."),
    fmt: str = typer.Option("ccv3", "--format", help="ccv2 or ccv3 (ccv3 PNGs carry both)."),
    png: Path | None = typer.Option(None, "--png", help="Portrait PNG to embed the card in."),
    out: Path = typer.Option(..., "--out", help="Output file: .png, .json or .charx."),
) -> None:
    """Write her as a Character Card V2/V3 file that other front ends import."""
    from serifu.cards import export_card

    export_card(plugins.get_character(character), fmt=fmt, out=out, portrait=png)
    typer.echo(f"wrote {out}")


def register(cli: typer.Typer) -> None:
    cli.add_typer(app, name="characters")
