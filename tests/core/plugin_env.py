"""Helpers to run the CLI with extra plugins installed into a throwaway folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SERIFU = [sys.executable, "-m", "serifu"]


def install_example_plugin(target: Path) -> Path:
    """pip-install examples/serifu-example-plugin into ``target`` (no deps, no network)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(ROOT / "examples" / "serifu-example-plugin"),
        ],
        check=True,
    )
    return target


def write_fake_dist(target: Path, name: str, module_source: str) -> None:
    """Install a one-module distribution by writing its files and dist-info by hand."""
    mod = name.replace("-", "_")
    (target / f"{mod}.py").write_text(module_source, encoding="utf-8")
    info = target / f"{mod}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[serifu]\n{mod} = {mod}\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")


def run_cli(
    args: list[str],
    extra_path: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if extra_path is not None:
        full_env["PYTHONPATH"] = os.pathsep.join([str(extra_path), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    return subprocess.run(
        SERIFU + args, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=300
    )


def plugins_json(
    extra_path: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    proc = run_cli(["plugins", "--json"], extra_path, env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
