"""Training checkpoints: LoRA weights, optimizer, scheduler, RNG states, progress.

Checkpoints live in a work folder beside the output (``.<out>.work/checkpoint-<step>``).
Each is written to a temporary folder and renamed into place in one step; only then are
older ones deleted. So a crash, a kill or a full disk at any moment leaves at least one
complete checkpoint once the first has been written (resume takes the newest).

``state.pt`` holds only tensors, numbers and strings and is read with
``torch.load(weights_only=True)``: a crafted file cannot run code, it is rejected.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError

PREFIX = "checkpoint-"


@dataclass
class Progress:
    """What the loop has done so far (saved in every checkpoint)."""

    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    fingerprint: str = ""
    """Hash of model, data and config: a resume must match it."""
    eval_losses: dict[str, float] = field(default_factory=dict)
    """Periodic validation loss by step (JSON keys are strings)."""


def work_dir(out: Path) -> Path:
    return Path(out).parent / f".{Path(out).name}.work"


def _step_of(folder: Path) -> int | None:
    rest = folder.name[len(PREFIX) :]
    return int(rest) if folder.name.startswith(PREFIX) and rest.isdigit() else None


def checkpoints(out: Path) -> list[Path]:
    """The complete checkpoints of ``out``, oldest first."""
    work = work_dir(out)
    if not work.is_dir():
        return []
    found = [(s, p) for p in work.iterdir() if p.is_dir() and (s := _step_of(p)) is not None]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def _rng_state() -> dict[str, Any]:
    """RNG states as tensors, numbers and strings only (``weights_only``-loadable)."""
    import numpy as np
    import torch

    name, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, [int(k) for k in key], int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def capture_rng() -> dict[str, Any]:
    """The RNG states now (to undo a step that was cut short)."""
    return _rng_state()


def restore_rng(state: dict[str, Any]) -> None:
    _set_rng_state(state)


def _drop_older(keep: Path) -> None:
    """Delete the checkpoints older than ``keep`` and leftover temporary folders."""
    for folder in keep.parent.iterdir():
        step = _step_of(folder)
        stale_tmp = folder.name.startswith(f".{PREFIX}") and folder.name.endswith(".tmp")
        if (step is not None and folder != keep and step < (_step_of(keep) or 0)) or stale_tmp:
            shutil.rmtree(folder, ignore_errors=True)


def save_checkpoint(
    out: Path, model: Any, optimizer: Any, scheduler: Any, progress: Progress
) -> Path:
    """Write the checkpoint of ``progress.step`` (a no-op when it exists); return its folder."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    work = work_dir(out)
    target = work / f"{PREFIX}{progress.step:08d}"
    if target.is_dir():  # the same step: the same state
        return target
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=work))
    try:
        lora = {
            k: v.detach().cpu().contiguous()
            for k, v in get_peft_model_state_dict(model, save_embedding_layers=False).items()
        }
        save_file(lora, str(tmp / "lora.safetensors"))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": _rng_state(),
            },
            tmp / "state.pt",
        )
        (tmp / "progress.json").write_text(json.dumps(asdict(progress)), encoding="utf-8")
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _drop_older(target)
    return target


def _read_progress(folder: Path) -> Progress:
    path = folder / "progress.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(Progress)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        progress = Progress(**raw)
        if not isinstance(progress.step, int) or progress.step < 0:
            raise ValueError(f"step must be a whole number >= 0, got {progress.step!r}")
        if not isinstance(progress.losses, list) or len(progress.losses) != progress.step:
            raise ValueError("the loss list does not match the step count")
        if not isinstance(progress.fingerprint, str):
            raise ValueError("fingerprint is not a string")
    except FileNotFoundError:
        raise SerifuError(
            "the checkpoint is incomplete (no progress.json); start again with --force "
            "(this deletes the checkpoint)",
            path=folder,
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise SerifuError(
            f"the checkpoint's progress.json is damaged ({exc}); it was not used. Start again "
            "with --force (this deletes the checkpoint)",
            path=path,
        ) from None
    return progress


def read_progress(out: Path) -> Progress | None:
    """The newest checkpoint's progress (None when there is none)."""
    folder = latest_checkpoint(out)
    return _read_progress(folder) if folder is not None else None


def check_same_run(progress: Progress, fingerprint: str, folder: Path) -> None:
    """A resume must be the run the checkpoint belongs to (model, data, settings)."""
    if progress.fingerprint != fingerprint:
        raise SerifuError(
            "--resume: the checkpoint was made with a different model, dataset or training config; "
            "use the same options, or start again with --force (this deletes the checkpoint)",
            path=folder,
        )


def _load_state(path: Path) -> dict[str, Any]:
    import pickle

    import torch

    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise SerifuError(
            "the checkpoint is incomplete (no state.pt); start again with --force", path=path
        ) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SerifuError(
            "not a checkpoint state Serifu can load safely: it holds something other than "
            f"tensors, numbers and strings, or is damaged ({first[:200]}). It was not loaded "
            "and nothing in it ran. Start again with --force (this deletes the checkpoint)",
            path=path,
        ) from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "rng"} <= set(state):
        raise SerifuError(
            "the checkpoint state lacks optimizer, scheduler or RNG state; start again "
            "with --force",
            path=path,
        )
    return state


def load_checkpoint(
    out: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str
) -> Progress:
    """Restore the newest checkpoint saved by :func:`save_checkpoint`; the run must be the same one."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = latest_checkpoint(out)
    if folder is None:
        raise SerifuError(
            "--resume: there is no checkpoint for this output folder (run without --resume to start)",
            path=work_dir(out),
        )
    progress = _read_progress(folder)
    check_same_run(progress, fingerprint, folder)
    state = _load_state(folder / "state.pt")
    device = next(p.device for p in model.parameters())
    try:
        lora = load_file(str(folder / "lora.safetensors"), device=str(device))
    except (OSError, SafetensorError) as exc:
        raise SerifuError(
            f"the checkpoint's LoRA weights cannot be read ({exc}); start again with --force",
            path=folder / "lora.safetensors",
        ) from None
    set_peft_model_state_dict(model, lora)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise SerifuError(
            f"the checkpoint state does not fit this run ({exc}); start again with --force",
            path=folder / "state.pt",
        ) from None
    return progress


def remove_checkpoints(out: Path) -> None:
    shutil.rmtree(work_dir(out), ignore_errors=True)
