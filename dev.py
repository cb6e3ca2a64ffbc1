#!/usr/bin/env python3
"""Serifu's bootstrap: one command sets up `.venv` (once) and runs a job in it.

    python3 dev.py quickstart   # the main job on the embedded default (README)
    python3 dev.py test         # the test suite's default tier (README, CI)
    python3 dev.py nox -s slow  # the slow tier (real Gemma 3 270M; CI runs it after `test`)
    python3 dev.py nox -s lint  # any nox session; `python3 dev.py nox -l` lists them
    python3 dev.py serifu ...   # the serifu CLI from the project environment
    python3 dev.py setup        # only create/update the environment

Needs only Python >= 3.11 with pip and venv. Re-running reuses `.venv`; it reinstalls
only when requirements/ or a pyproject.toml changed. `SERIFU_TORCH` overrides the torch
requirement (default `torch==2.13.0`, a CPU wheel on the project's machines).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SERIFU_VENV", ROOT / ".venv"))
STAMP = VENV / ".serifu-stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
TORCH = os.environ.get("SERIFU_TORCH", "torch==2.13.0")


def _fingerprint() -> str:
    h = hashlib.sha256(TORCH.encode())
    files = sorted(ROOT.glob("requirements/*.txt")) + sorted(ROOT.glob("packages/*/pyproject.toml"))
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _run(cmd: list[str], **kw: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on any python3
        sys.exit(f"Serifu needs Python >= 3.11 (this is {sys.version.split()[0]}).")
    if not PY.exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fp = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == fp:
        return
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # torch first, alone: a bare `torch` requirement would pull a multi-GB CUDA build.
    _run(pip + [TORCH])
    _run(pip + ["-r", "requirements/dev.txt"])
    STAMP.write_text(fp)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    return env


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    job, rest = argv[0], argv[1:]
    setup()
    if job == "setup":
        return 0
    if job == "test":
        cmd = [str(BIN / "nox"), "-s", "tests", "--", *rest]
    elif job == "quickstart":
        cmd = [str(BIN / "nox"), "-s", "demo", "--", *rest]
    elif job == "nox":
        cmd = [str(BIN / "nox"), *rest]
    elif job == "serifu":
        cmd = [str(BIN / "serifu"), *rest]
    else:
        print(f"unknown job {job!r}; see `python3 dev.py --help`", file=sys.stderr)
        return 2
    return subprocess.call(cmd, cwd=ROOT, env=_env())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
