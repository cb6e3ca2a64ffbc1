"""``serifu plugins``: what is registered, by whom, and what failed."""

from __future__ import annotations

import json

import typer

from serifu import plugins


def plugins_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List registered data sources, templates, base models, evaluators, characters and failures."""
    report: dict[str, list[dict[str, str]]] = {}
    for kind in plugins.KINDS:
        report[kind] = [
            {
                "id": reg.id,
                "provider": reg.provider.name,
                "version": reg.provider.version,
                "module": reg.provider.module,
                "description": str(getattr(reg.item, "description", "")),
            }
            for reg in plugins.registry(kind).values()
        ]
    report["failed"] = [
        {"plugin": f.plugin, "provider": f.provider, "error": f.error} for f in plugins.failed()
    ]
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    for kind, items in report.items():
        typer.echo(f"{kind}:")
        if not items:
            typer.echo("  (none)")
        for it in items:
            if kind == "failed":
                typer.echo(f"  {it['plugin']}: {it['error']}")
            else:
                typer.echo(
                    f"  {it['id']:<24} {it['provider']} {it['version']}  {it['description']}"
                )
