"""bench/render_results.py renders every results file the repository keeps, whatever its shape:
the GPU records and ablations as docs/benchmarks.md's tables, the bench scripts' own records
as their note and one table per set of rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.render_results import render_any

RESULTS = sorted((Path(__file__).resolve().parents[2] / "bench" / "results").glob("*.json"))


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_every_results_file_renders_a_table(path: Path) -> None:
    text = render_any(json.loads(path.read_text(encoding="utf-8")))
    assert "|---" in text


def test_a_fresh_processes_record_renders_its_note_and_rows() -> None:
    record = {
        "note": "two contenders",
        "versions": {"torch": "2.11.0"},
        "processes": {"hf-static": [{"tok_s": 120.5, "how": "a | b", "host": {"calls": 9}}]},
        "summary": {
            "hf-static": {"tok_s": 120.5},
            "default": {"tok_s": 187.3, "x_hf": 1.554, "x_hf_per_round": [1.5, 1.6]},
        },
    }
    text = render_any(record)
    lines = text.splitlines()
    assert lines[0] == "two contenders"
    assert "**processes.hf-static**" in lines and "**summary**" in lines
    assert "| name | tok_s | x_hf | x_hf_per_round |" in lines
    assert "| default | 187.3 | 1.554 | 1.5, 1.6 |" in lines
    assert "| hf-static | 120.5 | – | – |" in lines
    assert "| 120.5 | a \\| b |" in lines  # a cell's bar escaped; the nested host left out
    assert "torch" not in text  # versions are no table
