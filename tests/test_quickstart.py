"""``serifu quickstart`` end to end: real data, real 4-bit QLoRA steps, base-vs-tuned evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SERIFU = Path(sys.executable).with_name("serifu")


@pytest.mark.slow  # the real default model (Gemma 3 270M): conversion, 4-bit steps, two evaluations
def test_quickstart_json_run_writes_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SERIFU_THREADS": "1"}
    done = subprocess.run(
        [str(SERIFU), "quickstart", "--no-play", "--steps", "2", "--limit", "2", "--json"]
        + ["--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    for key in ("data", "adapter"):
        assert Path(summary[key]).is_dir(), key
    assert (Path(summary["adapter"]) / "adapter_model.safetensors").is_file()
    assert set(summary["eval"]) == {"base", "tuned"}
    for folder in summary["eval"].values():
        assert (Path(folder) / "report.json").is_file()
    runs = json.dumps(summary["compare"], ensure_ascii=False)
    assert "base" in runs and "tuned" in runs and len(summary["compare"]) >= 2
    assert summary["train"] and set(summary["timings"]) == {"data_s", "train_s", "eval_s"}
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic outputs: nothing half-written left
