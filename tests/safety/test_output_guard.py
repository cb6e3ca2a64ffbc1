"""``--out`` never destroys what Serifu did not write (issue 14, data loss).

Before the guard, ``serifu data build proj/myscript.txt --out proj`` deleted the input
script and ``--out .`` crashed with a traceback and left temporary folders behind.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from serifu.cli import main
from serifu.errors import SerifuError
from serifu.fsutil import (
    MARKER,
    atomic_output_dir,
    check_output_dir,
    forcing,
    os_error,
    serifu_output_kind,
)

from .conftest import ROOT, listing

BUILD = ["data", "build", "--source", "script", "--speaker", "みお"]


def _build(script: Path, out: Path | str, *extra: str) -> int:
    return main([*BUILD, str(script), "--out", str(out), *extra])


def test_out_containing_the_input_is_refused_and_the_input_kept(
    tmp_path: Path, script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    mine = proj / "myscript.txt"
    shutil.copy(script, mine)
    before = mine.read_bytes()
    assert _build(mine, proj) == 2
    err = capsys.readouterr().err
    assert "contains the input" in err and "Traceback" not in err
    assert mine.read_bytes() == before and listing(proj) == ["myscript.txt"]
    assert _build(mine, proj, "--force") == 2  # --force never replaces an input
    assert mine.read_bytes() == before


def test_out_equal_to_or_inside_an_input_folder_is_refused(tmp_path: Path, script: Path) -> None:
    ds = tmp_path / "ds"
    assert _build(script, ds) == 0
    kept = listing(ds)
    for out in (ds, ds / "sub", tmp_path):  # train --data ds --out ds, a child, a parent
        with pytest.raises(SerifuError, match="input"):
            check_output_dir(out, inputs=[ds], force=True)
    assert listing(ds) == kept


def test_out_dot_is_a_clear_error_without_temp_folders(
    tmp_path: Path,
    script: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(script, work / "s.txt")
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        assert _build(Path("s.txt"), out, "--force") == 2
        err = capsys.readouterr().err
        assert "current folder" in err and "Traceback" not in err
    assert listing(work) == ["s.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.txt", "work"]


def test_home_and_its_parents_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home" / "me"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for out in (home, home.parent, Path("/")):
        with pytest.raises(SerifuError, match="home folder|current folder"):
            check_output_dir(out, force=True)


def test_a_folder_serifu_did_not_write_needs_force(
    tmp_path: Path, script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("years of work", encoding="utf-8")
    assert _build(script, mine) == 2
    assert "--force" in capsys.readouterr().err
    assert listing(mine) == ["notes.txt"]
    assert _build(script, mine, "--force") == 0
    assert not (mine / "notes.txt").exists() and serifu_output_kind(mine) == "dataset"
    assert json.loads((mine / MARKER).read_text(encoding="utf-8")) == {"kind": "dataset"}
    assert _build(script, mine) == 0  # now it is Serifu's: rebuilt without --force


def test_pre_marker_serifu_folders_are_recognised(tmp_path: Path) -> None:
    old = tmp_path / "old-ds"
    old.mkdir()
    for name in ("build.json", "dataset_dict.json"):
        (old / name).write_text("{}", encoding="utf-8")
    assert serifu_output_kind(old) == "dataset"
    assert check_output_dir(old) == old
    (old / "dataset_dict.json").unlink()
    with pytest.raises(SerifuError, match="not written by Serifu"):
        check_output_dir(old)


def test_an_out_path_through_a_file_is_a_clear_error(
    tmp_path: Path, script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for out in (script, script / "x", script / "x" / "y"):
        assert _build(script, out) == 2
        err = capsys.readouterr().err
        assert "is a file" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.txt"]


def test_forcing_lets_library_writes_replace_a_user_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("x", encoding="utf-8")
    with pytest.raises(SerifuError), atomic_output_dir(out, kind="eval"):
        pass
    with forcing(out), atomic_output_dir(out, kind="eval") as tmp:
        (tmp / "report.json").write_text("{}", encoding="utf-8")
    assert listing(out) == [MARKER, "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folders


def test_eval_checks_out_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("keep", encoding="utf-8")
    args = ["eval", "--model", "no-such-model", "--character", "kaede", "--out", str(mine)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not written by Serifu" in err and "Traceback" not in err
    assert listing(mine) == ["keep.txt"]


def test_disk_errors_read_as_one_paragraph() -> None:
    for code, words in (
        (errno.ENOSPC, "disk is full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission"),
    ):
        message = str(os_error(OSError(code, "x"), "out"))
        assert words in message and "Nothing was replaced" in message and "\n" not in message


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_full_disk_keeps_the_previous_dataset(tmp_path: Path, script: Path) -> None:
    """A real full disk: a 128 kB tmpfs in a private mount namespace, filled up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"user namespaces unavailable: {probe.stderr.decode()[:200]}")
    build = " ".join(f"'{a}'" for a in BUILD)
    py = f"'{ROOT / '.venv' / 'bin' / 'python'}'" if (ROOT / ".venv").is_dir() else "python3"
    shell = f"""
        set -u
        mount -t tmpfs -o size=128k tmpfs '{disk}' || exit 99
        cp '{script}' '{disk}/s.txt' && cd '{disk}'
        {py} -m serifu {build} s.txt --out ds >/dev/null || exit 98
        ls -A ds > before.txt
        cat /dev/zero > fill 2>/dev/null
        {py} -m serifu {build} s.txt --out ds --jsonl 2> '{tmp_path}/err.txt'
        echo "rc=$?"
        cat '{tmp_path}/err.txt'
        ls -A ds | diff - before.txt && echo same-files
        ls -A
    """
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode == 99:
        pytest.skip("cannot mount a tmpfs here")
    out = done.stdout
    assert "rc=2" in out, out + done.stderr
    assert "disk is full" in out and "Traceback" not in out
    assert "same-files" in out  # the previous dataset is intact
    assert sorted(out.split("same-files")[1].split()) == sorted(
        ["before.txt", "ds", "fill", "s.txt"]
    )  # and no temporary folder is left


def test_a_serifu_folder_of_another_kind_needs_force(tmp_path: Path, script: Path) -> None:
    """`data build --out` a trained adapter (a mistyped --out) does not replace it."""
    adapter = tmp_path / "adapter"
    with atomic_output_dir(adapter, kind="adapter") as tmp:
        (tmp / "adapter_model.safetensors").write_bytes(b"weights")
    with pytest.raises(SerifuError, match="holds a Serifu adapter, not a dataset"):
        check_output_dir(adapter, kind="dataset")
    assert _build(script, adapter) == 2
    assert (adapter / "adapter_model.safetensors").read_bytes() == b"weights"
    assert check_output_dir(adapter, kind="adapter") == adapter
    assert _build(script, adapter, "--force") == 0
