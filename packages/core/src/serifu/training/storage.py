"""Write failures (disk full, quota, file too large, I/O errors) as one clear paragraph."""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from serifu.errors import SerifuError

NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# What torch.save / safetensors say instead of an errno when a write fails.
_WRITE_FAILURE_TEXT = (
    "iostream error",
    "file write failed",
    "PytorchStreamWriter failed",
    "No space left",
    "StorageFull",
    "FileTooLarge",
    "File too large",
    "Disk quota",
)

_NO_SPACE_TEXT = (
    "No space left",
    "StorageFull",
    "FileTooLarge",
    "File too large",
    "Disk quota",
    "os error 28",
    "os error 27",
    "os error 122",
)


def write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed write (rather than a bug)."""
    if isinstance(exc, OSError):
        return True
    name = type(exc).__name__
    text = str(exc)
    return (isinstance(exc, RuntimeError) or name == "SafetensorError") and any(
        t in text for t in _WRITE_FAILURE_TEXT
    )


def no_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    text = str(exc)
    return any(t in text for t in _NO_SPACE_TEXT)


def free_mib(path: Path) -> float | None:
    """Free space (MiB) on the file system of ``path`` or its nearest existing parent."""
    for folder in [Path(path), *Path(path).parents]:
        if folder.exists():
            with contextlib.suppress(OSError):
                return shutil.disk_usage(folder).free / 2**20
            return None
    return None


@contextlib.contextmanager
def writing(what: str, path: Path, *, then: str = "") -> Iterator[None]:
    """Turn a failed write of ``what`` (to ``path``) into a :class:`SerifuError`;
    ``then`` says what was kept and how to go on."""
    try:
        yield
    except SerifuError as exc:
        if then:
            raise SerifuError(f"{exc} {then}") from None
        raise
    except Exception as exc:
        if not write_failure(exc):
            raise
        free = free_mib(path)
        if no_space(exc) or (free is not None and free < 64):
            reason = "the disk is full" + (f" ({free:.0f} MiB free)" if free is not None else "")
        else:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise SerifuError(
            f"could not write the {what}: {reason}. {then}".strip(), path=path
        ) from None
