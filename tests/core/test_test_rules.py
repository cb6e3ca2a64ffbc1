"""Rules for the test suite itself: no wall-clock asserts; CI runs the README's command and both tiers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOCKS = {"perf_counter", "monotonic", "time", "process_time"}
END_TO_END_WAITS = {"tests/game/test_terminal.py"}
"""Tests that drive a real terminal and may give up waiting after a generous deadline."""


def _reads_clock(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in CLOCKS
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "time"
        for n in ast.walk(node)
    )


def test_no_wall_clock_asserts() -> None:
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in END_TO_END_WAITS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        timed = {  # names bound to a clock reading: started = time.perf_counter()
            t.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign) and _reads_clock(n.value)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assert):
                continue
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            if _reads_clock(node.test) or names & timed:
                found.append(f"{rel}:{node.lineno}")
    assert not found, f"timed asserts flake on busy machines: {found}"


def test_ci_runs_the_readme_command_then_lint_typecheck_and_the_slow_tier() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "python3 dev.py test" in readme and "python3 dev.py test" in ci
    rest = ci[ci.index("python3 dev.py test") + 1 :]
    assert any(all(s in line for s in ("lint", "typecheck", "slow")) for line in rest)
    nox = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert '_pytest(session, "not slow")' in nox and '_pytest(session, "slow")' in nox
