"""Safe writes: atomic files and folders, and guards so ``--out`` never destroys user data.

Every folder Serifu writes (datasets, adapters, evaluations, checkpoints, exports, model
caches) goes through :func:`atomic_output_dir`: it is built in a temporary sibling folder
and renamed into place, and it carries a marker file (:data:`MARKER`) naming its kind.
Before anything is written, :func:`check_output_dir` decides whether ``out`` may be
(re)placed; the rules are in its docstring and in ``docs/data.md`` ("What --out may replace").
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from serifu.errors import SerifuError

MARKER = ".serifu-output"
"""File in every folder Serifu writes: JSON ``{"kind": KIND}``. Its presence lets a later
run replace the folder; a folder without it is the user's and is never replaced without force."""

LEGACY_SIGNATURES: dict[str, tuple[str, ...]] = {
    "dataset": ("build.json", "dataset_dict.json"),
    "adapter": ("serifu.json", "adapter_config.json"),
    "export": ("serifu.json", "config.json"),
    "eval": ("report.json", "generations.jsonl"),
    "checkpoint": ("progress.json", "lora.safetensors"),
}
"""Folders written by Serifu before the marker existed: all of a kind's files present."""

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_WRITE_ERRORS = _NO_SPACE | {errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}
"""OSErrors of writing that :func:`atomic_output_dir` turns into a clear message."""


_FORCED: contextvars.ContextVar[frozenset[Path]] = contextvars.ContextVar(
    "serifu_forced_outputs", default=frozenset()
)


def _resolved(path: Path | str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _within(inner: Path, outer: Path) -> bool:
    """``inner`` is ``outer`` or lies under it (both resolved)."""
    return inner == outer or outer in inner.parents


def serifu_output_kind(folder: Path | str) -> str | None:
    """The kind recorded in ``folder``'s marker (or recognised from a pre-marker layout), else None."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        return str(kind) if kind else "unknown"
    for kind, files in LEGACY_SIGNATURES.items():
        if all((folder / name).is_file() for name in files):
            return kind
    return None


def write_marker(folder: Path | str, kind: str) -> None:
    """Mark ``folder`` as written by Serifu (``atomic_output_dir`` does this for you)."""
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")


def check_output_dir(
    out: Path | str,
    *,
    inputs: Iterable[Path | str] = (),
    force: bool = False,
    overwrite: bool = True,
    kind: str | None = None,
) -> Path:
    """Raise a :class:`SerifuError` unless ``out`` may be (re)written; returns ``Path(out)``.

    Call it before any long work (loading models, training) so a bad ``--out`` fails in
    the first second, then write with :func:`atomic_output_dir` (which calls it again).
    ``out`` may be written when it does not exist yet, or is an empty folder, or is a
    folder Serifu wrote (it holds :data:`MARKER`, or a pre-marker Serifu layout). It is
    refused, with a one-paragraph message:

    - always (even with ``force``): ``out`` exists and is not a folder; a part of its path
      is a file; ``out`` is the current folder, the home folder or a parent of either
      (so never the filesystem root); ``out`` is one of ``inputs``, contains one, or lies inside one;
    - unless ``force``: ``out`` is a non-empty folder that Serifu did not write, or (when
      ``kind`` is given) one Serifu wrote as another kind (``data build --out`` an adapter);
    - with ``overwrite=False``: ``out`` is a non-empty folder (whoever wrote it).

    ``inputs``: every file or folder the command reads (scripts, ``--data``, ``--adapter``,
    ``--resume`` sources …). Example (``serifu train``)::

        check_output_dir(out, inputs=[data_dir], force=force, kind="adapter")
    """
    out_path = Path(out)
    where = _resolved(out_path)
    force = force or where in _FORCED.get()
    for parent in reversed(where.parents):
        if parent.exists() and not parent.is_dir():
            raise SerifuError(
                f"cannot write the output folder there: {parent} is a file, not a folder",
                path=out_path,
            )
    if out_path.exists() and not out_path.is_dir():
        raise SerifuError(
            "the output path exists and is a file, not a folder; choose another --out",
            path=out_path,
        )
    keep_out = [(_resolved(Path.cwd()), "the current folder")]
    with contextlib.suppress(RuntimeError):  # no home folder known
        keep_out.append((_resolved(Path.home()), "your home folder"))
    for keep, name in keep_out:
        if _within(keep, where):
            what = name if keep == where else f"a parent of {name}"
            raise SerifuError(
                f"refusing to use {what} as the output folder (it would be replaced); "
                "give --out a new folder name, e.g. --out runs/my-output",
                path=out_path,
            )
    for item in inputs:
        src = _resolved(item)
        if _within(src, where) or _within(where, src):
            relation = (
                "is an input"
                if src == where
                else ("contains the input" if _within(src, where) else "lies inside the input")
            )
            raise SerifuError(
                f"the output folder {relation} {item}; writing it would destroy or change "
                "what this command reads. Choose another --out",
                path=out_path,
            )
    try:
        has_files = out_path.is_dir() and any(out_path.iterdir())
    except OSError as exc:
        raise os_error(exc, out_path, "looking into the output folder") from None
    if not has_files:
        return out_path
    if not overwrite:
        raise SerifuError("the output folder exists and is not empty", path=out_path)
    if force:
        return out_path
    found = serifu_output_kind(out_path)
    if found is None:
        raise SerifuError(
            "the output folder exists, is not empty and was not written by Serifu (no "
            f"{MARKER} file), so it is not replaced; choose a new --out, empty it, or pass "
            "--force to replace it and everything in it",
            path=out_path,
        )
    if kind is not None and found not in (kind, "output", "unknown"):
        raise SerifuError(
            f"the output folder holds a Serifu {found}, not a {kind}; it is not replaced "
            "(a mistyped --out?). Choose another --out, or pass --force to replace it",
            path=out_path,
        )
    return out_path


@contextlib.contextmanager
def forcing(out: Path | str | None, force: bool = True) -> Iterator[None]:
    """Within the block, writes to ``out`` behave as if ``force=True`` was passed.

    For a CLI command with ``--force`` whose writing happens deep in library code::

        check_output_dir(out, inputs=[data], force=force)   # fail fast
        with forcing(out, force):
            evaluate(request)                               # its atomic_output_dir(out) may replace
    """
    if out is None or not force:
        yield
        return
    token = _FORCED.set(_FORCED.get() | {_resolved(out)})
    try:
        yield
    finally:
        _FORCED.reset(token)


def os_error(exc: OSError, path: Path | str, doing: str = "writing") -> SerifuError:
    """A one-paragraph :class:`SerifuError` for an ``OSError`` met while ``doing`` ``path``.

    Disk full, quota, read-only filesystem, permission, a path through a file: the message
    says what happened and that nothing was replaced. Use as ``raise os_error(exc, p) from None``.
    """
    code = exc.errno
    if code in _NO_SPACE:
        why = "the disk is full (no space left on the device)"
        fix = "free some space or choose an --out on another disk, then run again"
    elif code == errno.EROFS:
        why, fix = "the filesystem is read-only", "choose another --out"
    elif code in (errno.EACCES, errno.EPERM):
        why, fix = "permission denied", "choose a folder you may write to"
    elif code == errno.ENOTDIR:
        why, fix = "a part of the path is a file, not a folder", "check the path"
    else:
        why, fix = (exc.strerror or str(exc)), "check the path and the disk"
    return SerifuError(
        f"failed while {doing}: {why}. Nothing was replaced (a previous output, if any, is "
        f"intact); {fix}.",
        path=path,
    )


@contextlib.contextmanager
def os_errors_as_serifu(path: Path | str, doing: str = "writing") -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into :func:`os_error`'s clear message.

    For H-TRAIN-style callers: wrap a final save, e.g.
    ``with os_errors_as_serifu(out, "saving the adapter"): model.save_pretrained(tmp)``.
    """
    try:
        yield
    except SerifuError:
        raise
    except OSError as exc:
        raise os_error(exc, path, doing) from None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRORS:
            raise os_error(exc, path) from None
        raise


def atomic_write_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename.

    An ``OSError`` (disk full …) is a :class:`SerifuError`; the old file is kept.
    """
    _atomic_write(Path(path), text.encode(encoding))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Binary twin of :func:`atomic_write_text`."""
    _atomic_write(Path(path), data)


@contextlib.contextmanager
def atomic_output_dir(
    out: Path | str,
    *,
    overwrite: bool = True,
    kind: str = "output",
    inputs: Iterable[Path | str] = (),
    force: bool = False,
) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``out`` in one rename.

    First :func:`check_output_dir` (``inputs``, ``force``, ``overwrite``) decides whether
    ``out`` may be replaced. On success the folder gets the :data:`MARKER` file with
    ``kind`` ("dataset", "adapter", "eval", "checkpoint", "export", "model" …). On any
    error (or Ctrl-C) the temporary folder is removed and ``out`` is untouched; an
    ``OSError`` (disk full, permission …) becomes a clear :class:`SerifuError`.
    """
    out = check_output_dir(out, inputs=inputs, force=force, overwrite=overwrite)
    with os_errors_as_serifu(out, "creating the output folder"):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        with os_errors_as_serifu(out):
            write_marker(tmp, kind)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRORS:
            raise os_error(exc, out) from None
        raise
    old: Path | None = None
    try:
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "previous")
        os.replace(tmp, out)
    except OSError as exc:
        if old is not None and (old / "previous").exists() and not out.exists():
            os.replace(old / "previous", out)  # put the previous output back
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise os_error(exc, out) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
