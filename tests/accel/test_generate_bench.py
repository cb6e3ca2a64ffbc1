"""The reply benchmark (bench/gpu/generate_speed.py) runs end to end on the CPU with --tiny:
Serifu vs the HF static-cache peer, roofline fields, the lever ablation, 4-bit rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generate_speed_tiny_writes_every_kind_of_row(tmp_path: Path) -> None:
    out = tmp_path / "gen.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--tiny", "--models", "gemma-3-270m", "--prompt", "24", "--new", "6"]
    args += ["--batches", "1,2", "--repeats", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/gpu/generate_speed.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text(encoding="utf-8"))
    by = {(r["workload"], r["metric"]): r for r in rows}
    head = by[("generate", "tokens_per_s")]
    assert head["baseline_kind"] == "hf-static" and head["baseline"] > 0
    assert head["roofline_tok_s"] > 0 and 0 < head["roofline_share"] == round(
        head["serifu"] / head["roofline_tok_s"], 3
    )
    # the fast path's greedy tokens equal the eager path's, and HF's
    assert "greedy tokens equal eager: True" in head["notes"]
    assert "greedy tokens equal Serifu's: True" in head["notes"]
    assert by[("generate", "first_token_ms")]["serifu"] > 0
    assert by[("generate-batch2", "tokens_per_s")]["baseline_kind"] == "hf-static"
    levers = {w for w, _ in by if w.startswith("generate-ablation-")}
    assert levers == {
        f"generate-ablation-{n}"
        for n in (
            "sync-every-token",
            "eager-prompt-pass",
            "previous-decoder",
            "lora-unmerged",
            "no-cuda-graph",
        )
    }
    assert all(by[(w, "tokens_per_s")]["baseline"] == head["serifu"] for w in levers)
    # 4-bit: torchao int4 has no CPU kernel (a row that says so), bitsandbytes NF4 runs
    assert by[("generate-int4", "tokens_per_s")]["notes"].startswith("skipped:")
    nf4 = by[("generate-nf4", "weight_memory_share")]
    assert 0 < nf4["serifu"] < 1
    assert by[("generate-nf4", "tokens_per_s")]["serifu"] > 0
