"""Contributor sessions. They run in the project environment that `python3 dev.py` prepares
(`.venv`); run them as `python3 dev.py nox -s NAME`, or activate `.venv` and call `nox`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the CPU test suite (tiny models, small data); extra args go to pytest."""
    session.run(
        "python", "-m", "pytest", *(session.posargs or ["-q"]), env={"OMP_NUM_THREADS": "1"}
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and format check."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy over the three packages."""
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The README's main job: `serifu quickstart` on the embedded default (args are forwarded)."""
    session.run("serifu", "quickstart", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (CPU ones run here; GPU ones need a GPU: see bench/README.md)."""
    session.run("python", "bench/run_cpu.py", *session.posargs)
