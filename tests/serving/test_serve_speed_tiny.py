"""``bench/gpu/serve_speed.py --tiny``: the GPU serving benchmark's harness on the CPU —
8 heroines' random LoRA adapters on one tiny base, served mixed (continuous batching),
mixed batch-at-a-time, switching and switching with continuous batching (all through the
stacked adapters and the static decoder: ``SERIFU_STATIC_DECODE=any``, no graphs on the
CPU) and eager switching, no request lost, records written per ``baseline_kind`` with the
mean rows per step, the static-vs-eager and continuous checks in the notes and the logits
check as records."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_serve_speed_tiny_runs_both_servers_without_losing_requests(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    out = tmp_path / "serve.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "gpu" / "serve_speed.py"),
        "--tiny",
        "--models",
        "gemma-3-270m",
        "--players",
        "1",
        "--requests",
        "2",
        "--max-tokens",
        "4",
        "--threads",
        "1",
        "--eager",
        "--out",
        str(out),
    ]
    env = {**os.environ, "SERIFU_STATIC_DECODE": "any"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(out.read_text(encoding="utf-8"))
    records = {r["metric"]: r for r in found if r["baseline_kind"] == "switching"}
    eager = {r["metric"]: r for r in found if r["baseline_kind"] == "switching-eager"}
    assert set(records) >= {"tokens_per_s", "requests_per_s", "latency_p50_s", "ttft_p95_s"}
    assert set(eager) == set(records) and "rows_per_step" in records
    kinds_found = {r["baseline_kind"] for r in found}
    assert {"switching-continuous", "mixed-batched"} <= kinds_found
    assert "peft-mixed" not in kinds_found  # --peft-mixed only
    for kinds in (records, eager):
        assert kinds["failed_requests"]["serifu"] == kinds["failed_requests"]["baseline"] == 0
        assert kinds["tokens_per_s"]["serifu"] > 0 and kinds["tokens_per_s"]["baseline"] > 0
    speed = records["tokens_per_s"]
    assert speed["model"] == "tiny-gemma" and speed["workload"] == "serve-8x4"
    # mixed batches held several heroines; switching batches one heroine each (8 x 2 requests)
    notes = speed["notes"]
    mixed_rows, switching_rows = (float(v) for v in re.findall(r"([\d.]+) rows/batch", notes))
    assert mixed_rows > 1.0 and switching_rows <= 1.0
    assert "static decoders: 8x" in notes  # the static decoder served the mixed batches
    # the correctness check: static mixed batch == eager mixed batch, all 8 rows
    assert "graphed vs eager mixed batch 8/8 rows identical" in notes
    assert "graphed vs graphs off 8/8 rows identical" in notes
    assert "alone vs admitted mid-batch identical text and length" in notes
    assert re.search(r"[\d.]+ rows/step over \d+ steps", notes)
    assert 0 < records["rows_per_step"]["serifu"] <= 8
    # the logits check: graphed vs graphs off and vs the eager step, teacher-forced
    for key in ("graphs_off", "eager"):
        check = {r["metric"]: r for r in found if r["baseline_kind"] == f"graph-check-{key}"}
        assert check["token_mismatches"]["baseline"] == 8 * 4  # rows x steps compared
        assert check["token_mismatches_over_margin"]["serifu"] == 0
        assert check["logits_max_abs_diff"]["serifu"] < 1e-3  # fp32 on the CPU
    assert "eager steps" in eager["tokens_per_s"]["notes"]
