"""Training checkpoints: LoRA weights, optimizer, scheduler, RNG states, progress.

Checkpoints live in a work folder beside the output (``.<out>.work/checkpoint``), each
written atomically, so a crash or Ctrl-C never leaves a half-written one.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.fsutil import atomic_output_dir


@dataclass
class Progress:
    """What the loop has done so far (saved in every checkpoint)."""

    step: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    fingerprint: str = ""
    """Hash of model, data and config: a resume must match it."""


def work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.work"


def checkpoint_dir(out: Path) -> Path:
    return work_dir(out) / "checkpoint"


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out: Path, model: Any, optimizer: Any, scheduler: Any, progress: Progress
) -> Path:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = checkpoint_dir(out)
    with atomic_output_dir(target) as tmp:
        lora = {
            k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()
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
    return target


def load_checkpoint(
    out: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str
) -> Progress:
    """Restore everything saved by :func:`save_checkpoint`; the run must be the same one."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = checkpoint_dir(out)
    if not (folder / "progress.json").is_file():
        raise SerifuError(
            "--resume: there is no checkpoint for this output folder (run without --resume to start)",
            path=folder,
        )
    progress = Progress(**json.loads((folder / "progress.json").read_text(encoding="utf-8")))
    if progress.fingerprint != fingerprint:
        raise SerifuError(
            "--resume: the checkpoint was made with a different model, dataset or training config; "
            "use the same options, or start again without --resume",
            path=folder,
        )
    device = next(p.device for p in model.parameters())
    set_peft_model_state_dict(
        model, load_file(str(folder / "lora.safetensors"), device=str(device))
    )
    state = torch.load(folder / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return progress
