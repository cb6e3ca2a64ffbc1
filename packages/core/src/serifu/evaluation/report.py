"""``report.json`` (machine-readable) and ``report.md`` (for people) of one evaluation.

Nothing here names an evaluator: the headline order and labels come from each
evaluator's ``headline``, its section body from its ``markdown(result)`` (see
:class:`serifu.kinds.Evaluator`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from serifu.kinds import evaluator_markdown, headline_labels

SCHEMA = "serifu-eval/1"


def registered_evaluators() -> dict[str, Any]:
    """Every registered evaluator by id (registration order: built-ins first)."""
    from serifu import plugins

    return {i: r.item for i, r in plugins.evaluators().items()}


def headline_columns(evaluators: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``{"evaluator.key": short label}`` declared by ``evaluators`` (default: registered)."""
    found = registered_evaluators() if evaluators is None else evaluators
    columns: dict[str, str] = {}
    for evaluator in found.values():
        columns.update(headline_labels(evaluator))
    return columns


def headline(
    results: dict[str, dict[str, Any]], evaluators: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``{"evaluator.metric": value}`` from every evaluator's ``summary``, declared ones first."""
    flat = {
        f"{evaluator}.{key}": value
        for evaluator, result in results.items()
        for key, value in (result.get("summary") or {}).items()
    }
    ordered = {key: flat[key] for key in headline_columns(evaluators) if key in flat}
    ordered.update({k: v for k, v in flat.items() if k not in ordered})
    return ordered


def fmt(value: Any) -> str:
    """A metric for a table cell: 3 decimals, '–' for missing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "⏎")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(
    report: dict[str, Any],
    samples: dict[str, list[dict[str, Any]]],
    plots: list[str],
    evaluators: Mapping[str, Any] | None = None,
) -> str:
    """The human report: settings, headline table across conditions, details, samples, plots."""
    found = registered_evaluators() if evaluators is None else evaluators
    conditions = list(report["conditions"])
    out = [
        f"# Evaluation: {report['model']}"
        + (f" + {report['adapter']}" if report.get("adapter") else ""),
        "",
        f"Character: **{report['target']}** · queries: {report['queries']['opener']} openers + "
        f"{report['queries']['profile']} profile questions · seed {report['settings']['seed']} · "
        f"max_new_tokens {report['settings']['max_new_tokens']} · reference: {report['reference']['description']} "
        f"({report['reference']['lines']} real lines, {report['reference']['heldout_pairs']} held-out pairs)",
        "",
        "## Headline",
        "",
    ]
    keys: list[str] = []
    for cond in conditions:
        keys += [k for k in report["conditions"][cond]["summary"] if k not in keys]
    rows = [
        [key] + [fmt(report["conditions"][c]["summary"].get(key)) for c in conditions]
        for key in keys
    ]
    out += [markdown_table(["metric", *conditions], rows), ""]
    for cond in conditions:
        results = report["conditions"][cond]["evaluators"]
        out += [f"## {cond}", ""]
        for evaluator_id, result in results.items():
            out += section(evaluator_id, result, found.get(evaluator_id))
        picks = samples.get(cond, [])
        if picks:
            out += ["### Sample replies", ""]
            out += [
                markdown_table(
                    ["query", "reply", "stopped"],
                    [
                        [s["query"], s["text"] or "(empty)", "yes" if s["stopped"] else "no"]
                        for s in picks
                    ],
                ),
                "",
            ]
    if plots:
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(out)


def section(evaluator_id: str, result: dict[str, Any], evaluator: Any | None) -> list[str]:
    """``### id``, then skipped/failed, or the summary line and the evaluator's own body."""
    out = [f"### {evaluator_id}", ""]
    if "skipped" in result:
        return out + [f"Skipped: {result['skipped']}", ""]
    if "error" in result:
        return out + [f"**Failed:** {result['error']}", ""]
    summary = result.get("summary", {})
    out += [", ".join(f"{k} = {fmt(v)}" for k, v in summary.items()), ""]
    if evaluator is not None:
        try:
            body = evaluator_markdown(evaluator, result)
        except Exception as exc:  # a broken section must not lose the report
            body = f"(section failed: {type(exc).__name__}: {exc})"
        if body.strip():
            out += [body.rstrip(), ""]
    return out
