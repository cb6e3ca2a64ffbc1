"""The evaluation folders published in docs/results are whole: no evaluator failed where the
replies were generated (a GPU machine without the Japanese analyser leaves style-markers as an
error until `serifu eval rescore` runs on the CPU), and every plot a report shows exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
RUNS = sorted(p.parent for p in RESULTS.glob("*/*/report.json"))


def test_results_are_published() -> None:
    assert len(RUNS) >= 16  # base and tuned for each of the eight heroines


@pytest.mark.parametrize("run", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_evaluator_failed(run: Path) -> None:
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    failed = {
        f"{cond}: {evaluator}"
        for cond, data in report["conditions"].items()
        for evaluator, result in data["evaluators"].items()
        if isinstance(result, dict) and "error" in result
    }
    assert not failed, f"re-run them with `serifu eval rescore {run}`: {sorted(failed)}"


@pytest.mark.parametrize("run", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shown_plot_exists(run: Path) -> None:
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (run / "report.md").read_text(encoding="utf-8"))
    assert all((run / name).is_file() for name in shown), shown
