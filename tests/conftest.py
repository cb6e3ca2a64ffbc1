"""Shared fixtures. Tests run on the CPU with one thread (two were erratically 10x slower)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def aozora_path() -> Path:
    """The shared corpus of Aozora plays: ``$SERIFU_AOZORA`` or ``../shared/corpora/aozora``."""
    return Path(os.environ.get("SERIFU_AOZORA", ROOT.parent / "shared" / "corpora" / "aozora"))


@pytest.fixture(scope="session")
def aozora_dir() -> Path:
    path = aozora_path()
    if not (path / "MANIFEST.md").is_file():
        pytest.skip(
            f"the Aozora corpus is not here ({path}); it lives in ../shared beside the repo"
        )
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Keep saves out of the user's home; share one model cache across the session."""
    monkeypatch.setenv("SERIFU_HOME", str(tmp_path_factory.getbasetemp() / "serifu-home"))
    monkeypatch.setenv(
        "SERIFU_CACHE", os.environ.get("SERIFU_TEST_CACHE", str(ROOT / ".cache-test"))
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
