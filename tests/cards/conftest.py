"""Imported packs go to a per-test folder; the plugin registry is rebuilt around each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serifu import plugins


@pytest.fixture
def packs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "packs"
    monkeypatch.setenv("SERIFU_CHARACTERS", str(folder))
    plugins.reset()
    yield folder
    plugins.reset()
