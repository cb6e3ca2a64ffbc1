"""``serifu serve``: the tuned heroines as an OpenAI-compatible HTTP server (docs/serving.md)."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from serifu.errors import SerifuError


def serve_command(
    character: list[str] = typer.Option(
        [], "--character", help="Heroine to serve (repeatable; default: every registered one)."
    ),
    model: str | None = typer.Option(None, "--model", help="Base model id, folder or hub id."),
    adapter: Path | None = typer.Option(
        None,
        "--adapter",
        help="LoRA adapter: for one --character, or alone to serve it as a heroine of its own "
        "(model id: its folder's name).",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind (default: this machine only)."
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port)."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="SERIFU_API_KEY", help="Require 'Authorization: Bearer KEY'."
    ),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="Allowed browser origin (repeatable)."
    ),
    max_tokens: int = typer.Option(
        512, "--max-tokens", help="Largest max_tokens a request may ask."
    ),
    max_queue: int = typer.Option(
        128, "--max-queue", help="Rows waiting before 429 Too Many Requests."
    ),
    max_batch: int = typer.Option(16, "--max-batch", help="Rows decoded together at most."),
    batch_wait_ms: float = typer.Option(
        0.0,
        "--batch-wait-ms",
        min=0.0,
        max=1000.0,
        help="A batch keeps taking requests until none arrived for this long (bursts of "
        "clients share one batch; the GPU benchmark uses 10).",
    ),
    continuous: bool = typer.Option(
        False,
        "--continuous/--no-continuous",
        help="GPU: requests join the running batch at its next step (continuous batching). "
        "Off by default: measured slower than batch-at-a-time so far (docs/serving.md).",
    ),
    warm_up: bool = typer.Option(
        True,
        "--warm-up/--no-warm-up",
        help="GPU: decode one short batch per batch size before serving, so CUDA graphs are "
        "captured at start and not inside the first clients' requests.",
    ),
    vocabulary: str = typer.Option(
        "auto",
        "--vocabulary",
        help="auto|on|off: her output vocabulary on chat replies; off lets heroines share batches.",
    ),
    quantize: bool | None = typer.Option(
        None, "--quantize/--no-quantize", help="Load the base in 4-bit."
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, … (default: best available)."
    ),
) -> None:
    """Serve heroines over /v1/models, /v1/chat/completions and /v1/completions."""
    try:
        import uvicorn
    except ImportError:
        raise SerifuError(
            "serifu serve needs the serve extra: pip install 'serifu[serve]'"
        ) from None
    from serifu import plugins
    from serifu.serving.app import ServerLimits, create_app
    from serifu.serving.engine import Engine
    from serifu.serving.heroines import load_heroines

    if host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        typer.echo(
            f"warning: serving on {host} without --api-key: anyone who can reach it may use it",
            err=True,
        )
    sock = _listen(host, port)  # before the slow model load: a busy port fails at once
    # --adapter alone: that adapter as a heroine of its own (any script's speaker, no pack)
    ids = character or ([] if adapter is not None else list(plugins.characters()))
    heroines = load_heroines(
        ids, model=model, adapter=adapter, device=device, quantize=quantize, vocabulary=vocabulary
    )
    engine = Engine(
        heroines,
        max_queue=max_queue,
        max_batch=max_batch,
        batch_wait=batch_wait_ms / 1000,
        continuous=continuous,
    )
    if warm_up:
        warmed = engine.warm_up()
        for sizes in warmed["batch_sizes"].values():
            typer.echo(
                f"warmed up batch sizes {', '.join(map(str, sizes))} in {warmed['seconds']} s",
                err=True,
            )
    app = create_app(
        engine,
        api_key=api_key,
        cors_origins=cors_origin,
        limits=ServerLimits(max_tokens=max_tokens),
    )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/v1"
    typer.echo(f"serving {', '.join(heroines)} on {url}", err=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if server.should_exit:  # stopped by Ctrl-C/SIGTERM (uvicorn may or may not re-raise it)
        raise typer.Exit(130)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SerifuError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def register(cli: typer.Typer) -> None:
    cli.command("serve")(serve_command)
