"""``serifu train``, ``serifu soup``, ``serifu export`` and ``serifu chat``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from serifu.cli import options


def train_command(
    model: str = typer.Option(
        ..., "--model", help="Base model: plugin id, local folder or hub id."
    ),
    data: Path = typer.Option(..., "--data", help="Dataset folder from `serifu data build`."),
    out: Path = typer.Option(..., "--out", help="Output folder for the adapter."),
    config: Path | None = typer.Option(
        None, "--config", help="serifu.toml (default ./serifu.toml)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override KEY=VALUE, e.g. train.batch_size=4."
    ),
    epochs: float | None = typer.Option(None, "--epochs", help="Epochs (overrides the config)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the last checkpoint of this --out."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace an --out folder Serifu did not write, and delete an unfinished run's checkpoint.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Train a QLoRA adapter (4-bit base, NF4 by default, + LoRA) on a character dataset."""
    from serifu.config import load_config
    from serifu.training import train

    flags = [f"train.epochs={epochs!r}"] if epochs is not None else []
    flags += [f"train.max_steps={max_steps}"] if max_steps is not None else []
    cfg = load_config(config, [*overrides, *flags]).train  # flags are validated like --set
    result = train(model, data, out, cfg, resume=resume, force=force, progress=True)
    if as_json:
        typer.echo(json.dumps(result.summary(), ensure_ascii=False))
        return
    typer.echo(
        f"Adapter written to {result.out}: {result.steps} steps, loss {result.loss_first:.3f} -> "
        f"{result.loss_last:.3f}, {result.tokens_per_s:.0f} tokens/s."
    )


def soup_command(
    adapters: list[Path] = typer.Argument(
        ..., help="Two or more adapter folders of one recipe (e.g. trained with other seeds)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder for the averaged adapter."),
    rank: int | None = typer.Option(
        None, "--rank", help="Cut the averaged delta back to this LoRA rank (truncated SVD)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an --out folder Serifu did not write."
    ),
) -> None:
    """Average adapters into one (a model soup of LoRA deltas; exact unless --rank)."""
    from serifu.training.soup import average_adapters

    info = average_adapters(list(adapters), out, rank=rank, force=force)
    soup = info["soup"]
    kept = f", {soup['energy_kept_min']:.0%} of the delta kept (worst layer)" if rank else ""
    typer.echo(f"Soup of {len(adapters)} adapters written to {out}: rank {soup['rank']}{kept}.")


def export_command(
    adapter: Path = typer.Argument(..., help="Adapter folder written by `serifu train`."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    merge: bool = typer.Option(
        True, "--merge/--no-merge", help="Merge the LoRA into full-precision weights."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Base model (default: the adapter's; another base is an error)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an --out folder Serifu did not write."
    ),
) -> None:
    """Export merged full-precision weights (the base loaded unquantised) + tokenizer."""
    from serifu.inference.export import export_merged

    if not merge:
        raise typer.BadParameter(
            "only --merge is supported (the adapter folder itself is the unmerged export)"
        )
    folder = export_merged(adapter, out, model=model, force=force)
    typer.echo(f"Merged model written to {folder}.")


def chat_command(
    character: str | None = typer.Option(
        None,
        "--character",
        help="Character id (default: the adapter's; see `serifu characters list`).",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Base model (default: the adapter's, else gemma-3-270m)."
    ),
    adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter folder."),
    no_system_prompt: bool = typer.Option(
        False, "--no-system-prompt", help="Leave out the profile system prompt."
    ),
    once: str | None = typer.Option(None, "--once", help="Print one reply to this line and exit."),
    max_new_tokens: int = typer.Option(
        48, "--max-new-tokens", min=1, help="Token limit per reply."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed."),
    quantize: bool | None = typer.Option(
        None,
        "--4bit/--full",
        help="Base in NF4 4-bit or full precision (default: full; bf16 on a GPU).",
    ),
    weights: str = typer.Option(
        "bf16",
        "--weights",
        help="Reply weights: bf16, or the adapter merged and then quantised: nf4 "
        "(bitsandbytes) / int4 (torchao, CUDA, serifu[int4]), or uint4: the base 4-bit "
        "under the unmerged adapter (Serifu's uint4 GEMV, CUDA, serifu[triton]; simulated on the "
        "CPU).",
    ),
    no_repeat_ngram: int | None = options.NO_REPEAT_NGRAM,
) -> None:
    """Talk to a character: a REPL that streams replies, or one reply with --once."""
    from serifu.errors import SerifuError
    from serifu.inference import load_chatbot
    from serifu.inference.quantize import check_weights

    check_weights(weights)  # before the model loads
    if character is None and adapter is None:
        raise SerifuError(
            "name the character with --character (or pass an --adapter trained for one)"
        )
    bot = load_chatbot(
        model=model,
        adapter=adapter,
        character=character,
        system_prompt=not no_system_prompt,
        quantize=quantize,
        weights=weights,
        prefix_cache=True,
        card_answers=True,  # a profile question her candidates all miss: her card's answer
        no_repeat_ngram=no_repeat_ngram,
    )
    if bot.notice:
        typer.echo(bot.notice, err=True)
    if once is not None:
        typer.echo(bot.reply(once, max_new_tokens=max_new_tokens, seed=seed))
        return
    name = bot.character_name
    typer.echo(
        f"{name} ({bot.model_id}{', ' + str(bot.adapter) if bot.adapter else ''}). Empty line or Ctrl-D quits."
    )
    history: list[tuple[str, str]] = []
    while True:
        try:
            line = input("あなた> ").strip()
        except EOFError:
            break
        if not line:
            break
        typer.echo(f"{name}> ", nl=False)
        pieces = []
        for piece in bot.stream(line, history, max_new_tokens=max_new_tokens, seed=seed):
            pieces.append(piece)
            typer.echo(piece, nl=False)
        typer.echo("")
        history.append((line, "".join(pieces)))


def register(cli: typer.Typer) -> None:
    """Add ``train``, ``soup``, ``export`` and ``chat`` to the root app."""
    cli.command("train")(train_command)
    cli.command("soup")(soup_command)
    cli.command("export")(export_command)
    cli.command("chat")(chat_command)
