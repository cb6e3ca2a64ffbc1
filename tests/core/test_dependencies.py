"""Each package declares what it imports; exact pins live only in requirements/constraints.txt."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "serifu": ROOT / "packages" / "core",
    "serifu-models": ROOT / "packages" / "models",
    "serifu-game": ROOT / "packages" / "game_demo",
    "serifu-example-plugin": ROOT / "examples" / "serifu-example-plugin",
}
FIRST_PARTY = {"serifu", "serifu_models", "serifu_game", "serifu_example_plugin"}
HEAVY = {
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "scikit-learn",
    "matplotlib",
    "fugashi",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirements(folder: Path) -> list[Requirement]:
    project = _project(folder)
    raw = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        raw += extra
    return [Requirement(r) for r in raw]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    """Top-level module names imported at run time (``if TYPE_CHECKING:`` blocks skipped)."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            found |= set().union(*(_imports(n) for n in node.orelse)) if node.orelse else set()
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        found |= _imports(node)
    return found


def third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Third-party top-level import -> files (relative) of one package's ``src``."""
    out: dict[str, set[str]] = {}
    for path in sorted((folder / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _imports(tree):
            if name in sys.stdlib_module_names or name in FIRST_PARTY or name == "__future__":
                continue
            out.setdefault(name, set()).add(str(path.relative_to(folder)))
    return out


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_every_third_party_import_is_declared(dist: str) -> None:
    folder = PACKAGES[dist]
    declared = {_norm(r.name) for r in _requirements(folder)}
    providers = packages_distributions()
    undeclared = {
        module: sorted(files)
        for module, files in third_party_imports(folder).items()
        if not declared & {_norm(d) for d in providers.get(module, [module])}
    }
    assert not undeclared, (
        f"{dist} imports modules its pyproject.toml does not declare: {undeclared}"
    )


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_no_exact_pins_in_package_metadata(dist: str) -> None:
    pinned = [str(r) for r in _requirements(PACKAGES[dist]) if "==" in str(r.specifier)]
    assert not pinned, f"exact pins belong in requirements/constraints.txt: {pinned}"


def test_plain_serifu_installs_no_heavy_library() -> None:
    project = _project(PACKAGES["serifu"])
    base = {_norm(Requirement(r).name) for r in project["dependencies"]}
    assert not base & HEAVY
    extras = project["optional-dependencies"]
    assert {"torch", "transformers", "peft", "bitsandbytes", "accelerate"} <= {
        _norm(Requirement(r).name) for r in extras["train"]
    }
    assert {"scikit-learn", "fugashi", "matplotlib"} <= {
        _norm(Requirement(r).name) for r in extras["eval"]
    }


def test_dev_requirements_install_every_extra() -> None:
    dev = (ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8")
    assert "-e packages/core[all]" in dev and "-e packages/models[gemma]" in dev
    extras = _project(PACKAGES["serifu"])["optional-dependencies"]
    all_extras = Requirement(extras["all"][0]).extras
    # int4 (torchao) is CUDA-only and, once installed, imported with every peft import;
    # liger, gemlite and triton pull triton (Linux-only, ~1 GB; CUDA kernels): the extras that
    # `all` (and so CI) leaves out, on purpose (pyproject says why)
    assert all_extras == set(extras) - {"all", "int4", "liger", "gemlite", "triton"}


def test_constraints_pin_every_declared_third_party_requirement() -> None:
    pinned = {
        _norm(line.split("==")[0])
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    declared = {
        _norm(r.name)
        for folder in PACKAGES.values()
        for r in _requirements(folder)
        if _norm(r.name) not in {_norm(d) for d in PACKAGES}
    }
    assert not declared - pinned - {"torch"}  # torch: dev.py installs it first ($SERIFU_TORCH)
