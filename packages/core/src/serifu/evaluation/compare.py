"""One table across evaluation runs: base vs tuned, with vs without system prompt, model vs model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.evaluation.report import HEADLINE_ORDER, SCHEMA, _fmt, markdown_table

SHORT_NAMES = {
    "character-classifier.target_share": "in-character",
    "character-classifier.heldout_accuracy": "clf ceiling",
    "profile-qa.accuracy": "profile-QA",
    "perplexity.perplexity": "ppl",
    "perplexity.base_perplexity": "base ppl",
    "perplexity.reduction": "ppl drop",
    "style-markers.jsd_mean": "style JSD",
    "diversity.distinct_1": "distinct-1",
    "diversity.distinct_2": "distinct-2",
    "format.ok_rate": "one-line stop",
    "format.empty_rate": "empty",
}


def load_report(run_dir: Path) -> dict[str, Any]:
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
    if report.get("schema") != SCHEMA:
        raise SerifuError(
            f"unsupported report schema {report.get('schema')!r} (expected {SCHEMA})", path=path
        )
    return report


def run_label(report: dict[str, Any]) -> str:
    adapter = report.get("adapter")
    return report["model"] + (f" + {Path(adapter).name}" if adapter else " (base)")


def compare_rows(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per (run, condition): run folder, model label, character, condition, headline metrics."""
    rows = []
    for run_dir in run_dirs:
        report = load_report(run_dir)
        for condition, data in report["conditions"].items():
            rows.append(
                {
                    "run": str(run_dir),
                    "label": run_label(report),
                    "character": report["target"],
                    "condition": condition,
                    "metrics": data["summary"],
                }
            )
    return rows


def render_compare(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table; metric columns in headline order, those no run has are left out."""
    present = {key for row in rows for key in row["metrics"]}
    keys = [k for k in HEADLINE_ORDER if k in present]
    header = ["run", "character", "condition", *[SHORT_NAMES.get(k, k) for k in keys]]
    body = [
        [
            row["label"],
            row["character"],
            row["condition"],
            *[_fmt(row["metrics"].get(k)) for k in keys],
        ]
        for row in rows
    ]
    return markdown_table(header, body)
