"""Checks a training run makes before any work, so a bad ``--out`` fails in the first second.

- ``--out`` may be replaced only as :func:`serifu.fsutil.check_output_dir` allows (never a
  file, a path through a file, the dataset or a folder around it; a folder Serifu did not
  write only with ``force``);
- a checkpoint of an unfinished run is continued with ``resume`` or deleted with
  ``force``, never silently;
- the work folder beside ``out`` (checkpoints, logs) must be writable;
- TensorBoard logging needs the ``tensorboard`` package.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from serifu.errors import SerifuError
from serifu.fsutil import check_output_dir, os_error
from serifu.training.checkpoint import read_progress, remove_checkpoints, work_dir
from serifu.training.storage import free_mib


def check_outputs(
    out: Path, data: Path, *, resume: bool, force: bool, report_to: str, write: bool = True
) -> None:
    """Raise a :class:`SerifuError` unless the run may write ``out`` and its work folder.
    With ``write`` (the main process) a fresh start (no ``resume``) empties the work
    folder (reaching that point with a checkpoint there takes ``force``), and the work
    folder is created."""
    check_output_dir(out, inputs=[data], force=force)
    work = work_dir(out)
    if work.exists() and not work.is_dir():
        raise SerifuError(
            "the run's work folder (checkpoints) exists and is a file; move it away", path=work
        )
    if resume:
        progress = read_progress(out)  # a damaged checkpoint fails here, before the model loads
        if progress is None:
            raise SerifuError(
                "--resume: there is no checkpoint for this output folder (run without "
                "--resume to start)",
                path=work,
            )
    elif not force:
        progress = read_progress(out) if work.is_dir() else None
        if progress is not None:
            raise SerifuError(
                f"an unfinished run of this --out has a checkpoint at step {progress.step}; "
                "continue it with --resume, or pass --force to delete it and start again",
                path=work,
            )
    if report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise SerifuError(
            "train.report_to = 'tensorboard' needs the tensorboard package "
            "(pip install tensorboard), or set train.report_to = 'none'"
        )
    if not write:
        return
    if not resume:  # no checkpoint, or --force: a fresh start (old logs go too)
        remove_checkpoints(out)
    probe_writable(work)


def probe_writable(folder: Path) -> None:
    """Create ``folder`` and a file in it (then delete the file): permission, read-only
    file systems and paths through files show up now, not after training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise os_error(exc, folder, "preparing the run's work folder") from None


def check_free_space(out: Path, lora_bytes: int) -> None:
    """Refuse to start when the disk cannot hold two checkpoints and the adapter."""
    need_mib = (lora_bytes * 8) / 2**20 + 16  # 2 x (LoRA + 2 Adam moments) + adapter + logs
    free = free_mib(work_dir(out))
    if free is not None and free < need_mib:
        raise SerifuError(
            f"not enough free disk space for this run: about {need_mib:.0f} MiB are needed "
            f"(checkpoints and the adapter), {free:.0f} MiB are free; free some space or "
            "choose an --out on another disk",
            path=out,
        )
