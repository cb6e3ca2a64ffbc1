"""``serifu eval``: run the 111-query evaluation, compare runs, test the character classifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from serifu.cli import options
from serifu.errors import SerifuError

app = typer.Typer(
    help="Evaluate a character chatbot: `serifu eval --model … --character … --out DIR`, or a subcommand.",
    invoke_without_command=True,
)

AS_JSON = typer.Option(False, "--json", help="Print JSON.")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.callback(invoke_without_command=True)
def run_eval(
    ctx: typer.Context,
    model: str | None = typer.Option(
        None, "--model", help="Base-model id (see `serifu plugins`), hub id or path."
    ),
    adapter: Path | None = typer.Option(
        None, "--adapter", help="LoRA adapter folder (from `serifu train`)."
    ),
    character: str | None = typer.Option(
        None, "--character", help="Character id (see `serifu characters list`)."
    ),
    script: list[Path] = typer.Option(
        [], "--script", help="Instead of --character: a multi-speaker script (repeatable)."
    ),
    source: str | None = typer.Option(
        None, "--source", help="Data source of --script (e.g. aozora-play)."
    ),
    speaker: str | None = typer.Option(
        None, "--speaker", help="With --script: the speaker to evaluate."
    ),
    min_lines: int = typer.Option(
        30, "--min-lines", min=1, help="With --script: classifier speakers need this many lines."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Output folder: created, or replaced atomically if Serifu wrote it.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace --out even when it is a non-empty folder Serifu did not write "
        "(never an input, the current folder or home).",
    ),
    system_prompt: str | None = typer.Option(
        None, "--system-prompt", help="on, off or both (default: config, on)."
    ),
    limit: int | None = typer.Option(
        None,
        "--limit",
        min=0,
        help="Only the first N openers, N profile questions and N held-out pairs.",
    ),
    evaluator: list[str] = typer.Option(
        [], "--evaluator", "-e", help="Evaluator id, repeatable (default: all)."
    ),
    queries: Path | None = typer.Option(
        None, "--queries", help="Your own openers file (UTF-8, one per line)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Dialogue dataset whose test split gives the perplexity pairs."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Replies per batch."),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", min=1, help="Tokens per reply."
    ),
    quantize: bool | None = typer.Option(
        None,
        "--quantize/--no-quantize",
        help="Load the base in NF4 4-bit (default: full precision, bf16 on a GPU).",
    ),
    device: str | None = typer.Option(
        None, "--device", help="cpu, cuda, … (default: best available)."
    ),
    vocabulary: str = typer.Option(
        "auto", "--vocabulary", help="auto | on | off | raw (no masks: diagnosis only)."
    ),
    best_of: int | None = typer.Option(
        None, "--best-of", min=1, max=64, help="Candidates reranked per reply (default: by device)."
    ),
    examples: int = typer.Option(
        0, "--examples", min=0, max=16, help="Her k most similar real exchanges in the prompt."
    ),
    no_repeat_ngram: int | None = options.NO_REPEAT_NGRAM,
    weights: str = typer.Option(
        "bf16",
        "--weights",
        help="Reply weights: bf16, or the adapter merged then quantised: nf4 / int4 (CUDA), "
        "or uint4: the base 4-bit under the unmerged adapter (Serifu's uint4 GEMV on CUDA; on the CPU "
        "the same rounding, dequantised: its quality, not its speed).",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="serifu.toml to read [eval] defaults from."
    ),
    overrides: list[str] = typer.Option([], "--set", help="Override KEY=VALUE, e.g. eval.seed=1."),
    as_json: bool = AS_JSON,
) -> None:
    """Generate replies to the openers and profile questions, score them, write the report."""
    if ctx.invoked_subcommand is not None:
        return
    if model is None or out is None or (character is None and not script):
        raise SerifuError(
            "serifu eval needs --model, --out and --character (or --script/--source/--speaker); "
            "subcommands: compare, classifier. See `serifu eval --help`."
        )
    if character is not None and script:
        raise SerifuError(
            "give either --character (a registered character) or --script/--source/--speaker "
            "(a script's speaker), not both"
        )
    from serifu.config import load_config
    from serifu.evaluation.runner import EvalRequest, evaluate
    from serifu.fsutil import check_output_dir, forcing
    from serifu.inference.quantize import check_weights

    check_weights(weights)  # before any model loads
    inputs = [p for p in (adapter, data, queries, *script) if p is not None]
    check_output_dir(out, inputs=inputs, force=force, kind="eval")
    flags = list(overrides)
    if system_prompt is not None:
        if system_prompt not in ("on", "off", "both"):
            raise SerifuError(f"--system-prompt must be on, off or both, got {system_prompt!r}")
        flags.append(f'eval.system_prompt="{system_prompt}"')
    for key, value in (
        ("limit", limit),
        ("seed", seed),
        ("batch_size", batch_size),
        ("max_new_tokens", max_new_tokens),
    ):
        if value is not None:
            flags.append(f"eval.{key}={value}")
    cfg = load_config(config, flags).eval
    request = EvalRequest(
        model=model,
        character=character,
        out=out,
        script=list(script),
        source=source,
        speaker=speaker,
        min_lines=min_lines,
        adapter=adapter,
        system_prompt=cfg.system_prompt,
        limit=cfg.limit,
        evaluators=list(evaluator) or cfg.evaluators,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        openers_file=queries,
        data=data,
        quantize=quantize,
        device=device,
        decoding={
            "vocabulary": vocabulary,
            "best_of": best_of,
            "examples": examples,
            **({"weights": weights} if weights != "bf16" else {}),
            **({"no_repeat_ngram": no_repeat_ngram} if no_repeat_ngram is not None else {}),
        },
        progress=None if as_json else _progress_printer(),
    )
    from serifu.evaluation.heldout import checked_reference

    reference = checked_reference(request)
    with forcing(out, force):
        report = evaluate(request, reference)
    summary = {
        "out": str(out),
        "conditions": {c: d["summary"] for c, d in report["conditions"].items()},
    }
    if as_json:
        _echo_json(summary)
        return
    from serifu.evaluation.compare import compare_rows, render_compare

    typer.echo(render_compare(compare_rows([out])))
    typer.echo(f"Wrote {out}/report.md, report.json, generations.jsonl and plots.")


def _progress_printer() -> Any:
    import sys

    tty = sys.stderr.isatty()

    def show(stage: str, done: int, total: int) -> None:
        if tty or done >= total:
            typer.echo(f"\r{stage}: {done}/{total} replies", nl=done >= total, err=True)

    return show


@app.command("compare")
def compare(
    runs: list[Path] = typer.Argument(..., help="Output folders of `serifu eval`."),
    as_json: bool = AS_JSON,
) -> None:
    """One table across runs: base vs tuned, with vs without system prompt, model vs model."""
    from serifu.evaluation.compare import (
        compare_rows,
        pooled_coherence,
        public_rows,
        render_compare,
    )

    rows = compare_rows(runs)
    if as_json:
        _echo_json({"runs": public_rows(rows), "coherence_pooled": pooled_coherence(rows)})
        return
    typer.echo(render_compare(rows))


@app.command("classifier")
def classifier(
    files: list[Path] = typer.Argument(..., help="Multi-speaker script files."),
    source: str = typer.Option(
        ..., "--source", "-s", help="Data source that reads them (aozora-play, script, table …)."
    ),
    min_lines: int = typer.Option(
        30, "--min-lines", min=1, help="Keep speakers with at least this many lines."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the by-scene split."),
    save: Path | None = typer.Option(
        None, "--save", help="Also save the fitted classifier (a skops file, no pickle)."
    ),
    as_json: bool = AS_JSON,
) -> None:
    """How well a 'which speaker said this' classifier separates a script's speakers (held-out by scene)."""
    from serifu.evaluation.attribution import fit_and_test
    from serifu.evaluation.reference import script_reference

    reference = script_reference(files, source, min_lines=min_lines, seed=seed)
    clf, held = fit_and_test(reference.lines, seed=seed)
    if save is not None:
        clf.save(save)
    result = {
        "accuracy": round(held.accuracy, 4),
        "chance": round(held.chance, 4),
        "uniform": round(1 / len(clf.classes), 4),
        "speakers": held.speakers,
        "n_train": held.n_train,
        "n_test": held.n_test,
        "confusions": held.confusions,
    }
    if as_json:
        _echo_json(result)
        return
    typer.echo(
        f"held-out accuracy {result['accuracy']:.3f} vs chance {result['chance']:.3f} (majority) / "
        f"{result['uniform']:.3f} (uniform); {held.n_train} train, {held.n_test} test lines"
    )
    for row in held.speakers:
        recall = "–" if row["recall"] is None else f"{row['recall']:.2f}"
        typer.echo(f"  {row['name']}: {row['train']} train, {row['test']} test, recall {recall}")
    for c in held.confusions[:5]:
        typer.echo(f"  confused: {c['true']} → {c['predicted']} ×{c['count']}")


@app.command("rescore")
def rescore_command(
    runs: list[Path] = typer.Argument(..., help="Output folders of `serifu eval`."),
    evaluators: list[str] = typer.Option(
        ["style-markers", "diversity"],
        "--evaluator",
        "-e",
        help="Evaluators to re-run (repeatable).",
    ),
    script: list[Path] = typer.Option([], "--script", help="The script, for a script character."),
    source: str | None = typer.Option(None, "--source", help="Its data source."),
) -> None:
    """Re-run evaluators on saved replies (no model needed) and rewrite the report files."""
    from serifu.evaluation.rescore import rescore

    for run in runs:
        report = rescore(run, evaluators, script=script, source=source)
        summary = {k: v for c in report["conditions"].values() for k, v in c["summary"].items()}
        typer.echo(
            f"{run}: "
            + ", ".join(f"{k}={v}" for k, v in summary.items() if k.split(".")[0] in evaluators)
        )


def register(cli: typer.Typer) -> None:
    """Add ``serifu eval`` to the root app."""
    cli.add_typer(app, name="eval")
