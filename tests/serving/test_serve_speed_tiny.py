"""``bench/gpu/serve_speed.py --tiny``: the GPU serving benchmark's harness on the CPU —
8 heroines' random LoRA adapters on one tiny base, served mixed and switching, no request
lost, records written with ``baseline_kind`` "switching"."""

from __future__ import annotations

import json
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
        "--out",
        str(out),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(out.read_text(encoding="utf-8"))
    records = {r["metric"]: r for r in found if r["baseline_kind"] == "switching"}
    peft = [r for r in found if r["baseline_kind"] == "peft-mixed"]
    assert [r["metric"] for r in peft] == ["tokens_per_s"] and peft[0]["baseline"] > 0
    assert set(records) >= {"tokens_per_s", "requests_per_s", "latency_p50_s", "ttft_p95_s"}
    assert records["failed_requests"]["serifu"] == records["failed_requests"]["baseline"] == 0
    speed = records["tokens_per_s"]
    assert speed["model"] == "tiny-gemma" and speed["workload"] == "serve-8x4"
    assert speed["serifu"] > 0 and speed["baseline"] > 0
    # mixed batches held several heroines; switching batches one heroine each (8 x 2 requests)
    assert "serifu: mixed-adapter batches" in speed["notes"]
    mixed_rows = float(speed["notes"].split("mixed-adapter batches (")[1].split(" ")[0])
    switching_rows = float(speed["notes"].split("per-heroine batches (")[1].split(" ")[0])
    assert mixed_rows > 1.0 and switching_rows <= 1.0
