"""``serifu eval``: generate replies to the 111 queries, run the evaluators, write the reports.

Output folder (written atomically): ``generations.jsonl`` (one reply per line),
``report.json`` (settings, per-condition evaluator results and headline), ``report.md``
and PNG plots.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from serifu.errors import SerifuError
from serifu.evaluation.generation import BotPool, generate_replies
from serifu.evaluation.plots import render_plots
from serifu.evaluation.report import SCHEMA, headline, registered_evaluators, render_markdown
from serifu.evaluation.run import EvalRun, Reference, Reply, Scorer
from serifu.fsutil import MARKER, atomic_output_dir
from serifu.kinds import needs_replies, needs_scorers
from serifu.queries import OPENER, PROFILE, build_queries, read_openers

SystemPromptMode = Literal["on", "off", "both"]
SAMPLES_PER_CONDITION = 12


@dataclass
class EvalRequest:
    """Everything one ``serifu eval`` needs (CLI flags and ``[eval]`` config resolved)."""

    model: str
    character: str | None
    """A registered character id; or None with ``script``/``source``/``speaker`` set."""
    out: Path
    adapter: Path | None = None
    system_prompt: SystemPromptMode = "on"
    limit: int | None = None
    evaluators: list[str] | None = None
    max_new_tokens: int = 48
    batch_size: int = 16
    seed: int = 0
    openers_file: Path | None = None
    data: Path | None = None
    """A dialogue dataset whose ``test`` split gives the perplexity pairs (else the cast's default split)."""
    script: list[Path] = field(default_factory=list)
    """Evaluate a script's speaker instead of a registered character (no card: no profile-QA)."""
    source: str | None = None
    speaker: str | None = None
    min_lines: int = 30
    quantize: bool | None = None
    device: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    """Extra ``load_chatbot`` options (``vocabulary``, ``best_of``, ``examples``)."""
    progress: Callable[[str, int, int], None] | None = field(default=None, repr=False)
    """Called as (stage, done, total) while generating."""


def condition_names(mode: SystemPromptMode) -> list[tuple[str, bool]]:
    return [
        (f"system-prompt-{m}", m == "on") for m in (("on", "off") if mode == "both" else (mode,))
    ]


def selected_evaluators(ids: list[str] | None) -> dict[str, Any]:
    from serifu import plugins

    if ids is None:
        return {i: r.item for i, r in plugins.evaluators().items()}
    return {i: plugins.get_evaluator(i) for i in ids}


def run_evaluators(run: EvalRun, evaluators: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every evaluator's result; one that raises is recorded as an error, never fatal."""
    results: dict[str, dict[str, Any]] = {}
    for evaluator_id, evaluator in evaluators.items():
        started = time.perf_counter()
        try:
            result = dict(evaluator.evaluate(run))
        except SerifuError:
            raise
        except Exception as exc:  # a broken (third-party) evaluator must not lose the run
            result = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=3),
            }
        result["seconds"] = round(time.perf_counter() - started, 3)
        results[evaluator_id] = result
    return results


def _versions() -> dict[str, str]:
    from serifu.versions import versions

    return versions(("serifu", "torch", "transformers", "peft", "scikit-learn", "fugashi"))


def _reference(request: EvalRequest) -> Reference:
    from serifu.evaluation.reference import cast_reference, script_reference

    if request.character:
        return cast_reference(request.character, seed=request.seed)
    if not (request.script and request.source and request.speaker):
        raise SerifuError(
            "name a --character, or a --script with its --source and the --speaker to evaluate"
        )
    return script_reference(
        request.script,
        request.source,
        speaker=request.speaker,
        min_lines=request.min_lines,
        seed=request.seed,
    )


def evaluate(request: EvalRequest, reference: Reference | None = None) -> dict[str, Any]:
    """Run the whole protocol and write the output folder; returns ``report.json``'s content."""
    from serifu import plugins
    from serifu.evaluation.reference import HELD_OUT, dataset_pairs

    started = time.perf_counter()
    evaluators = selected_evaluators(request.evaluators)
    card = plugins.get_character(request.character).card() if request.character else None
    if reference is None:
        reference = _reference(request)
    if request.data is not None:
        reference.heldout_pairs = dataset_pairs(request.data)
        reference.selection_pairs = dataset_pairs(request.data, HELD_OUT)
    if request.limit is not None:  # a quick run also scores fewer held-out pairs
        reference.heldout_pairs = reference.heldout_pairs[: request.limit]
        reference.selection_pairs = reference.selection_pairs[: request.limit]
    openers = read_openers(request.openers_file) if request.openers_file else None
    queries = build_queries(card, openers, limit=request.limit)
    conditions = condition_names(request.system_prompt)
    decoding = dict(request.decoding)
    if not request.character and reference.target:  # a script's speaker: her output vocabulary
        decoding["lines"] = [
            line.text for line in reference.lines if line.label == reference.target
        ]
        decoding["pairs"] = reference.train_pairs  # what --examples may show
    pool = BotPool(
        request.model,
        request.adapter,
        request.character,
        request.quantize,
        request.device,
        decoding,
    )

    replies: dict[str, list[Reply]] = {}
    timing: dict[str, float] = {}
    generate = any(needs_replies(e) for e in evaluators.values())
    total = len(queries) * len(conditions) if generate else 0
    done = 0
    for name, system_prompt in conditions:
        if not generate:  # scorer-only evaluators (perplexity, coherence): no replies needed
            replies[name] = []
            continue
        t0 = time.perf_counter()
        bot = pool.get(system_prompt=system_prompt)
        timing[f"load.{name}"] = round(time.perf_counter() - t0, 3)

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if request.progress is not None:
                request.progress("generate", done, total)

        t0 = time.perf_counter()
        replies[name] = generate_replies(
            bot,
            queries,
            name,
            batch_size=request.batch_size,
            max_new_tokens=request.max_new_tokens,
            seed=request.seed,
            progress=tick,
        )
        timing[f"generate.{name}"] = round(time.perf_counter() - t0, 3)

    shared: dict[Any, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    for name, system_prompt in conditions:
        scorers: dict[str, Scorer] = {}
        if any(needs_scorers(e) for e in evaluators.values()):
            batch = request.batch_size
            scorers["model"] = pool.scorer(system_prompt=system_prompt, batch_size=batch)
            if request.adapter is not None and pool.adapter_switchable():
                scorers["base"] = pool.scorer(
                    system_prompt=system_prompt, base=True, batch_size=batch
                )
        run = EvalRun(name, replies[name], reference, card=card, scorers=scorers, shared=shared)
        t0 = time.perf_counter()
        results[name] = run_evaluators(run, evaluators)
        timing[f"evaluate.{name}"] = round(time.perf_counter() - t0, 3)

    timing["total"] = round(time.perf_counter() - started, 3)
    report = {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": request.model,
        "adapter": str(request.adapter) if request.adapter else None,
        "character": request.character,
        "target": reference.target,
        "settings": {
            "system_prompt": request.system_prompt,
            "limit": request.limit,
            "max_new_tokens": request.max_new_tokens,
            "batch_size": request.batch_size,
            "seed": request.seed,
            "evaluators": list(evaluators),
            "openers_file": str(request.openers_file) if request.openers_file else None,
            "data": str(request.data) if request.data else None,
            "decoding": dict(request.decoding),
        },
        "queries": {
            "opener": sum(q.kind == OPENER for q in queries),
            "profile": sum(q.kind == PROFILE for q in queries),
        },
        "reference": {
            "description": reference.description,
            "lines": len(reference.lines),
            "target_lines": len(reference.target_lines()),
            "heldout_pairs": len(reference.heldout_pairs),
            "selection_pairs": len(reference.selection_pairs),
            "speakers": sorted({line.label for line in reference.lines}),
        },
        "conditions": {
            name: {"summary": headline(results[name], evaluators), "evaluators": results[name]}
            for name, _ in conditions
        },
        "timing": timing,
        "versions": _versions(),
    }
    write_outputs(request.out, report, replies, evaluators)
    return report


def write_outputs(
    out: Path,
    report: dict[str, Any],
    replies: dict[str, list[Reply]],
    evaluators: dict[str, Any] | None = None,
    *,
    keep_others: bool = False,
) -> None:
    """generations.jsonl, report.json, report.md and plots, all or nothing.

    ``evaluators`` (id -> evaluator) draw their sections and plots; the registered ones
    fill in for ids of the report they do not cover. ``keep_others``: files and folders
    already in ``out`` that are none of these stay (a rewrite in place, as ``rescore``'s).
    """
    found = {**registered_evaluators(), **(evaluators or {})}
    plots = render_plots({c: data["evaluators"] for c, data in report["conditions"].items()}, found)
    samples = {
        cond: [r.to_json() for r in rows if r.kind == OPENER][:SAMPLES_PER_CONDITION]
        for cond, rows in replies.items()
    }
    with atomic_output_dir(out) as tmp:
        lines = [
            json.dumps(r.to_json(), ensure_ascii=False) for rows in replies.values() for r in rows
        ]
        (tmp / "generations.jsonl").write_text(
            "".join(line + "\n" for line in lines), encoding="utf-8"
        )
        (tmp / "report.json").write_text(
            json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        (tmp / "report.md").write_text(
            render_markdown(report, samples, sorted(plots), found), encoding="utf-8"
        )
        for name, png in plots.items():
            (tmp / name).write_bytes(png)
        if keep_others and out.is_dir():
            for path in out.iterdir():
                if path.name == MARKER or (tmp / path.name).exists():
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.copytree(path, tmp / path.name, symlinks=True)
                else:
                    shutil.copy2(path, tmp / path.name, follow_symlinks=False)
