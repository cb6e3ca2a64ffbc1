"""Atomic writes: an error leaves the previous output intact and no temp files behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from serifu.errors import SerifuError
from serifu.fsutil import MARKER, atomic_output_dir, atomic_write_text


def _previous_output(out: Path) -> None:
    """An earlier output folder Serifu wrote (so it may be replaced)."""
    with atomic_output_dir(out) as tmp:
        (tmp / "old.txt").write_text("old")


def test_atomic_dir_replaces_on_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _previous_output(out)
    with atomic_output_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (out / "new.txt").exists()
    assert (out / "new.txt").read_text() == "new" and not (out / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_keeps_previous_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _previous_output(out)
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "old.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_refuses_non_empty_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("f")
    with (
        pytest.raises(SerifuError, match="not empty"),
        atomic_output_dir(tmp_path / "x", overwrite=False),
    ):
        pass


def test_atomic_write_text(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    atomic_write_text(target, "{}")
    atomic_write_text(target, '{"x": 1}')
    assert target.read_text() == '{"x": 1}'
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]
