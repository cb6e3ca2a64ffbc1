"""Mixed precision of the training forward pass (``train.autocast``).

PEFT keeps LoRA's weights in float32. Without autocast, each LoRA layer casts its input to
float32 before its dropout and matmuls, and that float32 copy is what backward keeps: on
stablelm-beta-7b's 16k-token step it is 256 MiB more at the peak than TRL, whose HF Trainer
runs the forward under bf16 autocast (``bench/gpu/memory_trace.py``). ``"on"`` does the
same: the forward (not backward, as torch's AMP recipe asks) under autocast to the base's
bf16 or float16, the LoRA weights still float32 for AdamW.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from serifu.config.train import TrainConfig


def autocast_dtype(model: Any, config: TrainConfig, device: str) -> torch.dtype | None:
    """The dtype the forward autocasts to: the base's half-precision compute dtype on CUDA
    with ``train.autocast = "on"``; None otherwise (no autocast)."""
    import torch

    if config.autocast != "on" or not str(device).startswith("cuda"):
        return None
    embed = model.get_input_embeddings()
    dtype = getattr(getattr(embed, "weight", None), "dtype", None)
    return dtype if dtype in (torch.bfloat16, torch.float16) else None


@dataclass(frozen=True)
class AutocastDecision:
    """What ``train.autocast`` resolved to for a run, and why (logged, kept in serifu.json)."""

    setting: str
    dtype: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_autocast(model: Any, config: TrainConfig, device: str) -> AutocastDecision:
    """:func:`autocast_dtype` with the reason a run reports."""
    dtype = autocast_dtype(model, config, device)
    name = None if dtype is None else str(dtype).removeprefix("torch.")
    if name is not None:
        why = f"the forward under {name} autocast (LoRA's weights stay float32)"
    elif config.autocast != "on":
        why = "off (set in the config): LoRA computes in float32"
    elif not str(device).startswith("cuda"):
        why = f"off: autocast applies on CUDA only (this run is on {device})"
    else:
        why = "off: the base computes in float32, there is no half precision to cast to"
    return AutocastDecision(config.autocast, name, why)


def forward_precision(
    dtype: torch.dtype | None, device_type: str = "cuda"
) -> AbstractContextManager[Any]:
    """Autocast to ``dtype`` (no weight cache: it must not outlive a CUDA graph's capture),
    or nothing."""
    if dtype is None:
        return nullcontext()
    import torch

    return torch.autocast(device_type, dtype=dtype, cache_enabled=False)
