"""Helpers of the safety tests: a real sample script, and the CLI run in-process or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "scripts" / "cast_format.txt"
SERIFU = [sys.executable, "-m", "serifu"]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """A copy of the sample game script (speaker みお has lines; source ``script``)."""
    path = tmp_path / "script.txt"
    path.write_bytes(SAMPLE.read_bytes())
    return path


def cli(
    *args: str | Path, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``serifu ARGS`` as a separate process (a crash shows as a signal, not a dead test run)."""
    env = {**os.environ, "PYTHONFAULTHANDLER": "0"}
    return subprocess.run(
        [*SERIFU, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def listing(folder: Path) -> list[str]:
    """Every name under ``folder`` (recursively, hidden ones too), sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
