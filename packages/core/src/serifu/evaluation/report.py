"""``report.json`` (machine-readable) and ``report.md`` (for people) of one evaluation."""

from __future__ import annotations

from typing import Any

SCHEMA = "serifu-eval/1"

HEADLINE_ORDER = (
    "character-classifier.target_share",
    "character-classifier.heldout_accuracy",
    "profile-qa.accuracy",
    "perplexity.perplexity",
    "perplexity.base_perplexity",
    "perplexity.reduction",
    "style-markers.jsd_mean",
    "diversity.distinct_1",
    "diversity.distinct_2",
    "format.ok_rate",
    "format.empty_rate",
)


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"evaluator.metric": value}`` from every evaluator's ``summary``, best-known first."""
    flat = {
        f"{evaluator}.{key}": value
        for evaluator, result in results.items()
        for key, value in (result.get("summary") or {}).items()
    }
    ordered = {key: flat[key] for key in HEADLINE_ORDER if key in flat}
    ordered.update({k: v for k, v in flat.items() if k not in ordered})
    return ordered


def _fmt(value: Any) -> str:
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
    report: dict[str, Any], samples: dict[str, list[dict[str, Any]]], plots: list[str]
) -> str:
    """The human report: settings, headline table across conditions, details, samples, plots."""
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
        [key] + [_fmt(report["conditions"][c]["summary"].get(key)) for c in conditions]
        for key in keys
    ]
    out += [markdown_table(["metric", *conditions], rows), ""]
    for cond in conditions:
        results = report["conditions"][cond]["evaluators"]
        out += [f"## {cond}", ""]
        for evaluator, result in results.items():
            out += _details(evaluator, result)
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


def _details(evaluator: str, result: dict[str, Any]) -> list[str]:
    out = [f"### {evaluator}", ""]
    if "skipped" in result:
        return out + [f"Skipped: {result['skipped']}", ""]
    if "error" in result:
        return out + [f"**Failed:** {result['error']}", ""]
    summary = result.get("summary", {})
    out += [", ".join(f"{k} = {_fmt(v)}" for k, v in summary.items()), ""]
    if evaluator == "character-classifier":
        held = result["heldout"]
        out += [
            f"Held-out accuracy on real lines {held['accuracy']:.3f} (majority baseline {held['chance']:.3f}, "
            f"{held['n_test']} lines). Replies attributed to: "
            + ", ".join(f"{k} {v}" for k, v in result["attributed_to"].items()),
            "",
        ]
        if held["confusions"]:
            out += [
                "Most confused (true → predicted): "
                + ", ".join(
                    f"{c['true']}→{c['predicted']} ×{c['count']}" for c in held["confusions"][:5]
                ),
                "",
            ]
    elif evaluator == "profile-qa":
        rows = [
            [i["q"], i["reply"] or "(empty)", "✓" if i["correct"] else "✗"] for i in result["items"]
        ]
        out += [markdown_table(["question", "reply", "ok"], rows), ""]
    elif evaluator == "style-markers":
        gen, real = result["generated"], result["real"]
        out += [
            markdown_table(
                ["marker", "generated", "real", "JSD"],
                [
                    [
                        "top endings",
                        _top(gen["top_endings"]),
                        _top(real["top_endings"]),
                        _fmt(result["jsd"]["endings"]),
                    ],
                    [
                        "first person",
                        _top(gen["first_person"]),
                        _top(real["first_person"]),
                        _fmt(result["jsd"]["first_person"]),
                    ],
                    [
                        "… rate",
                        _fmt(gen["ellipsis_rate"]),
                        _fmt(real["ellipsis_rate"]),
                        _fmt(result["jsd"]["ellipsis"]),
                    ],
                    [
                        "！ rate",
                        _fmt(gen["exclamation_rate"]),
                        _fmt(real["exclamation_rate"]),
                        _fmt(result["jsd"]["exclamation"]),
                    ],
                    [
                        "？ rate",
                        _fmt(gen["question_rate"]),
                        _fmt(real["question_rate"]),
                        _fmt(result["jsd"]["question"]),
                    ],
                    [
                        "mean length",
                        _fmt(gen["mean_length"]),
                        _fmt(real["mean_length"]),
                        _fmt(result["jsd"]["length"]),
                    ],
                ],
            ),
            "",
        ]
    return out


def _top(dist: dict[str, float], k: int = 4) -> str:
    return " ".join(f"{key} {value:.2f}" for key, value in list(dist.items())[:k]) or "–"
