"""Contributor sessions. They run in the project environment that `python3 dev.py` prepares
(`.venv`); run them as `python3 dev.py nox -s NAME`, or activate `.venv` and call `nox`."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"


def _pytest(session: nox.Session, marker: str) -> None:
    """pytest on the CPU; a ``-m`` in the session's args replaces ``marker``."""
    args = list(session.posargs or ["-q"])
    if "-m" not in args:
        args = ["-m", marker, *args]
    session.run("python", "-m", "pytest", *args, env={"OMP_NUM_THREADS": "1"})


@nox.session
def tests(session: nox.Session) -> None:
    """The default tier: CPU tests with tiny models and small data (`slow` ones deselected)."""
    _pytest(session, "not slow")


@nox.session(default=False)
def slow(session: nox.Session) -> None:
    """The slow tier: tests marked `slow` (the real Gemma 3 270M: quickstart, conversion)."""
    _pytest(session, "slow")


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
