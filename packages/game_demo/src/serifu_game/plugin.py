"""Entry point ``serifu = { game = "serifu_game.plugin" }``: adds ``serifu play``."""

from __future__ import annotations

from pathlib import Path

import typer

from serifu.hookspecs import hookimpl


def play(
    character: str | None = typer.Option(
        None, "--character", "-c", help="Heroine id: skip the title and open day 1."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="llm or retrieval (default: llm when she has a tuned adapter)."
    ),
    model: str | None = typer.Option(None, "--model", help="Base model id for the llm backend."),
    adapter: Path | None = typer.Option(
        None, "--adapter", help="LoRA adapter folder (llm backend)."
    ),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**63 - 1, help="Seed for suggestions and tie-breaks."
    ),
    server: str | None = typer.Option(
        None, "--server", help="URL of a `serifu serve` server: her replies come from there."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="SERIFU_API_KEY", help="The server's API key (--server)."
    ),
) -> None:
    """Play the dating-sim with a tuned heroine as NPC."""
    from serifu import plugins
    from serifu.errors import SerifuError

    if backend is not None and backend not in ("llm", "retrieval", "auto"):
        raise SerifuError(f"unknown backend {backend!r}; use llm or retrieval")
    if backend is None and (model or adapter):
        backend = "llm"
    if character is not None:
        plugins.get_character(character)  # unknown ids: a clear error before the UI starts
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        raise SerifuError("not a LoRA adapter folder (no adapter_config.json)", path=adapter)
    from serifu_game.app import SerifuGame

    game_class = SerifuGame
    if server is not None:
        from serifu_game.backends.http import server_game

        game_class = server_game(server, api_key)
    game_class(
        character=character,
        backend=backend,
        model=model,
        adapter=str(adapter) if adapter else None,
        seed=seed,
    ).run()


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    cli.command("play")(play)


@hookimpl(specname="play")
def play_hook(character: str, model: str | None, adapter: str | None) -> bool:
    """The ``play`` hook (``serifu quickstart``'s last step): open the game with this heroine."""
    from serifu_game.app import SerifuGame

    SerifuGame(character=character, backend="llm", model=model, adapter=adapter).run()
    return True
