"""One table across evaluation runs: base vs tuned, with vs without system prompt, model vs model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.evaluation.coherence import paired_diffs, summarise_diffs
from serifu.evaluation.report import SCHEMA, fmt, headline_columns, markdown_table


def load_report(run_dir: Path) -> dict[str, Any]:
    """A run folder's ``report.json`` (a :class:`SerifuError` naming the file otherwise)."""
    if Path(run_dir).is_file():
        raise SerifuError(
            "is a file; give the `serifu eval` output folder that holds report.json", path=run_dir
        )
    path = Path(run_dir) / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SerifuError(
            "no report.json here; is this a `serifu eval` output folder?", path=run_dir
        ) from None
    except json.JSONDecodeError as exc:
        raise SerifuError(
            f"report.json is not valid JSON ({exc.msg})", path=path, line=exc.lineno
        ) from None
    except UnicodeDecodeError:
        raise SerifuError("report.json is not UTF-8 text", path=path) from None
    except OSError as exc:
        raise SerifuError(f"cannot read report.json ({exc.strerror or exc})", path=path) from None
    if not isinstance(report, dict):
        raise SerifuError("report.json is not a JSON object: not a `serifu eval` report", path=path)
    if report.get("schema") != SCHEMA:
        raise SerifuError(
            f"unsupported report schema {report.get('schema')!r} (expected {SCHEMA})", path=path
        )
    damage = _damage(report)
    if damage:
        raise SerifuError(
            f"report.json is damaged ({damage}); run `serifu eval` again for this folder",
            path=path,
        )
    return report


def _damage(report: dict[str, Any]) -> str | None:
    """What a report lacks that a comparison reads (None: nothing)."""
    if not isinstance(report.get("model"), str):
        return "no model name"
    if "target" not in report:
        return "no target"
    conditions = report.get("conditions")
    if not isinstance(conditions, dict) or not conditions:
        return "no conditions"
    for name, data in conditions.items():
        if not isinstance(data, dict) or not isinstance(data.get("summary"), dict):
            return f"condition {name!r} has no summary"
        evaluators = data.get("evaluators", {})
        if not isinstance(evaluators, dict):
            return f"condition {name!r}: evaluators is not an object"
        coherence = evaluators.get("coherence") or {}
        for key in ("items", "base_items"):
            lines = coherence.get(key) if isinstance(coherence, dict) else None
            if lines is not None and not _scored_lines(lines):
                return f"condition {name!r}: coherence {key} are not scored lines"
    return None


def _scored_lines(lines: Any) -> bool:
    """A list of {query, reply, win} objects, win a number or null (as coherence writes)."""
    return isinstance(lines, list) and all(
        isinstance(i, dict)
        and isinstance(i.get("query"), str)
        and isinstance(i.get("reply"), str)
        and (i.get("win") is None or isinstance(i.get("win"), int | float))
        for i in lines
    )


def run_label(report: dict[str, Any]) -> str:
    adapter = report.get("adapter")
    return report["model"] + (f" + {Path(adapter).name}" if adapter else " (base)")


def compare_rows(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per (run, condition): run folder, model label, character, condition, headline
    metrics; a tuned run's row also carries ``coherence_vs_base`` when a base run of the same
    character (or the base inside the tuned run) scored the same lines (the paired
    difference, :func:`serifu.evaluation.coherence.paired_difference`)."""
    rows = []
    items: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for run_dir in run_dirs:
        report = load_report(run_dir)
        for condition, data in report["conditions"].items():
            rows.append(
                {
                    "run": str(run_dir),
                    "label": run_label(report),
                    "model": report["model"],
                    "character": report["target"],
                    "condition": condition,
                    "metrics": data["summary"],
                }
            )
            coherence = data.get("evaluators", {}).get("coherence", {})
            if coherence.get("items"):
                is_base = not report.get("adapter")
                items[(report["target"], condition, is_base)] = coherence["items"]
                rows[-1]["_items"] = (coherence["items"], coherence.get("base_items"))
    for row in rows:
        mine, embedded = row.pop("_items", (None, None))
        # a base run among those compared, else the base scored in the adapter's own run
        base = items.get((row["character"], row["condition"], True)) or embedded
        if mine is not None and base is not None and mine is not base:
            diffs = paired_diffs(mine, base)
            paired = summarise_diffs(diffs)
            if paired is not None:
                row["coherence_vs_base"] = paired
                row["_diffs"] = diffs  # for the pooled lines; not part of the JSON rows
                row["_lines"] = frozenset((i["query"], i["reply"]) for i in mine)
    return rows


def public_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` without their private keys (``_diffs``, ``_lines``): what ``--json`` prints."""
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


def _disjoint(runs: Sequence[dict[str, Any]]) -> bool:
    """No line scored in two of ``runs`` (cross-validation folds, not repeats of one split)."""
    seen: set[tuple[str, str]] = set()
    for run in runs:
        if seen & run["_lines"]:
            return False
        seen |= run["_lines"]
    return True


def pooled_coherence(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired per-line differences over the base, pooled, with a 95 % bootstrap interval:

    - per character, over her runs when they scored disjoint lines (the folds of a
      cross-validation, ``serifu data build --fold I/K``): ``character`` and ``runs``;
    - per base model and condition, over ≥ 2 characters: ``characters`` (each character's
      lines once: all her runs when disjoint, else her first).

    One heroine's 50–70 held-out lines rarely separate a difference of 0.1 from 0; all her
    lines (folds) or the cast's do."""
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        if "_diffs" in row:
            group = groups.setdefault((row["model"], row["condition"]), {})
            group.setdefault(row["character"], []).append(row)
    pooled = []
    for (model, condition), per_character in groups.items():
        lines: dict[str, list[float]] = {}
        for character, runs in per_character.items():
            folds = len(runs) >= 2 and _disjoint(runs)
            lines[character] = (
                [d for r in runs for d in r["_diffs"]] if folds else runs[0]["_diffs"]
            )
            summary = summarise_diffs(lines[character]) if folds else None
            if summary is not None:
                pooled.append(
                    {"model": model, "condition": condition, "character": character}
                    | {"runs": len(runs)}
                    | summary
                )
        if len(lines) < 2:
            continue
        summary = summarise_diffs([d for diffs in lines.values() for d in diffs])
        if summary is not None:
            pooled.append(
                {"model": model, "condition": condition, "characters": len(lines)} | summary
            )
    return pooled


def render_compare(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the headline metrics the runs have.

    Columns: each registered evaluator's declared ``headline`` keys (its labels), then
    every summary key of evaluators that declare none (labelled ``id.key``).
    """
    present: list[str] = []
    for row in rows:
        present += [k for k in row["metrics"] if k not in present]
    declared = headline_columns()
    declaring = {key.rsplit(".", 1)[0] for key in declared}  # ids of declaring evaluators
    keys = [k for k in declared if k in present]
    keys += [k for k in present if k not in declared and not _owned(k, declaring)]
    header = ["run", "character", "condition", *[declared.get(k, k) for k in keys]]
    body = [
        [
            row["label"],
            row["character"],
            row["condition"],
            *[fmt(row["metrics"].get(k)) for k in keys],
        ]
        for row in rows
    ]
    table = markdown_table(header, body)
    paired = [row for row in rows if "coherence_vs_base" in row]
    if not paired:
        return table
    lines = [
        "",
        "Coherence rank@1, adapted − base on the same held-out lines (95 % bootstrap interval):",
    ]
    named = [
        (f"{r['label']}, {r['character']}, {r['condition']}", r["coherence_vs_base"])
        for r in paired
    ]
    named += [
        (
            f"{p['model']} + adapters, pooled over {p['characters']} characters, {p['condition']}"
            if "characters" in p
            else f"{p['model']} + adapters, {p['character']} over {p['runs']} runs with disjoint "
            f"lines (folds), {p['condition']}",
            p,
        )
        for p in pooled_coherence(rows)
    ]
    for name, d in named:
        low, high = d["ci"]
        verdict = "above" if low > 0 else "below" if high < 0 else "not distinguishable from"
        lines.append(
            f"- {name}: {d['difference']:+.3f} [{low:+.3f}, {high:+.3f}] over {d['n']} lines "
            f"({verdict} the base)"
        )
    return table + "\n".join(lines) + "\n"


def _owned(key: str, evaluator_ids: set[str]) -> bool:
    return any(key.startswith(f"{i}.") for i in evaluator_ids)
