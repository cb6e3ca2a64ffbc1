"""Checkpointed layers' inputs kept in pinned host memory (``train.checkpoint_offload``).

With gradient checkpointing, what a step keeps on the GPU from the forward to the backward
is mostly each checkpointed decoder layer's input: layers x tokens x hidden x 2 bytes, 4 GiB
of stablelm-beta-7b's 16k-token step (a third of its peak). ``"on"`` moves each input to
pinned host memory as the forward leaves the layer and brings it back for the layer's
recompute in backward, so about one layer's input stays on the device.

Both copies run on a side stream. In the forward, a layer's input is copied out while the
next layer computes (the allocator is told the side stream still reads it). In backward,
the input of the layer before is fetched while this layer recomputes. So the step waits on
PCIe only where a layer's compute is shorter than its copy.

transformers 5.24 (the version pinned here) offers the same memory saving as
``activation_checkpointing_enable(offload=True)``, through torch's ``save_on_cpu``: both
copies on the compute stream, and the host waits for each copy in the forward. This module keeps the same hook points
(saved-tensor hooks around each layer's ``checkpoint`` call) and adds the side stream and
the fetch ahead. The bench runs both (``bench/gpu/train_speed.py`` rows ``liger-offload``
and ``liger-offload-torch``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from serifu.config.train import TrainConfig

MIN_BYTES = 1 << 20
"""Saved inputs smaller than this (masks, rotary tables, sequence offsets) stay where they are."""


@dataclass(eq=False)
class _Stash:
    """One layer input on the host, and its device copy when fetched ahead."""

    host: torch.Tensor
    device: torch.device
    copied: Any = None  # CUDA event: the copy to the host is done
    before: weakref.ref[_Stash] | None = None  # the input packed just before this one
    ahead: torch.Tensor | None = None  # fetched back ahead of its unpack
    ready: Any = None  # CUDA event: ``ahead`` is filled
    unpacked: int = 0


@dataclass
class HostOffload:
    """Saved-tensor hooks that keep large tensors on the host (see the module docstring).

    On CUDA the host copies are pinned and the copies run on ``stream``. Elsewhere the same
    bookkeeping runs with plain synchronous copies (the tests' path; the product offloads
    on CUDA only)."""

    device: torch.device
    min_bytes: int = MIN_BYTES
    moved_bytes: int = 0
    """Bytes copied to the host so far."""
    moved: int = 0
    fetched_ahead: int = 0
    """Unpacks served by a copy started while the layer after recomputed."""
    stream: Any = None
    _last: weakref.ref[_Stash] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import torch

        self.device = torch.device(self.device)
        if self.device.type == "cuda" and self.stream is None:
            self.stream = torch.cuda.Stream(self.device)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def hooks(self) -> Any:
        import torch

        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)

    def pack(self, t: torch.Tensor) -> Any:
        import torch

        size = t.numel() * t.element_size()
        if t.device.type != self.device.type or size < self.min_bytes:
            return t
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=self.cuda)
        copied = None
        if self.cuda:
            side = self.stream
            side.wait_stream(torch.cuda.current_stream(t.device))  # t is written
            with torch.cuda.stream(side):
                host.copy_(t, non_blocking=True)
                copied = torch.cuda.Event()
                copied.record(side)
            t.record_stream(side)  # its block is not reused before the copy has read it
        else:
            host.copy_(t)
        stash = _Stash(host, t.device, copied, self._last)
        self._last = weakref.ref(stash)
        self.moved_bytes += size
        self.moved += 1
        return stash

    def unpack(self, packed: Any) -> torch.Tensor:
        import torch

        if isinstance(packed, torch.Tensor):
            return packed
        stash: _Stash = packed
        stash.unpacked += 1
        if stash.ahead is not None:
            out, stash.ahead = stash.ahead, None
            if self.cuda:
                torch.cuda.current_stream(stash.device).wait_event(stash.ready)
            self.fetched_ahead += 1
        elif self.cuda:
            torch.cuda.current_stream(stash.device).wait_event(stash.copied)
            out = stash.host.to(stash.device, non_blocking=True)
        else:
            out = stash.host.clone()
        before = stash.before() if stash.before is not None else None
        if before is not None and before.unpacked == 0 and before.ahead is None:
            self._fetch(before)  # backward runs the layers in reverse: that one is next
        return out

    def _fetch(self, stash: _Stash) -> None:
        """Start bringing ``stash`` back while the current layer recomputes."""
        import torch

        if not self.cuda:
            stash.ahead = stash.host.clone()
            return
        current = torch.cuda.current_stream(stash.device)
        # allocated on the compute stream (its pool); the side stream writes it once the
        # work already queued there, which may still read the reused block, is done
        out = torch.empty(stash.host.shape, dtype=stash.host.dtype, device=stash.device)
        side = self.stream
        side.wait_stream(current)
        with torch.cuda.stream(side):
            out.copy_(stash.host, non_blocking=True)
            stash.ready = torch.cuda.Event()
            stash.ready.record(side)
        stash.ahead = out


def _offloaded(
    checkpoint: Callable[..., Any], hooks: Callable[[], Any], *args: Any, **kw: Any
) -> Any:
    with hooks():
        return checkpoint(*args, **kw)


def offload_checkpoints(model: Any, hooks: Callable[[], Any]) -> int:
    """Run every checkpointed layer of ``model`` under the saved-tensor hooks that
    ``hooks()`` makes (:meth:`HostOffload.hooks`, or torch's ``save_on_cpu``); returns how
    many decoder layers.

    The layers' ``_gradient_checkpointing_func`` (set on each instance by transformers)
    is wrapped; :func:`serifu.training.kernels.restore_point` puts it back."""
    from serifu.training.model_setup import checkpointed_layers

    for module in model.modules():
        func = module.__dict__.get("_gradient_checkpointing_func")
        if func is not None and getattr(module, "gradient_checkpointing", False):
            module._gradient_checkpointing_func = partial(_offloaded, func, hooks)
    return checkpointed_layers(model)


@dataclass
class OffloadDecision:
    """What ``train.checkpoint_offload`` resolved to for a run, and why (logged, kept in
    serifu.json with the bytes moved)."""

    setting: str
    on: bool
    reason: str
    layers: int = 0
    offload: HostOffload | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        # not asdict(): it would deep-copy the offload's CUDA stream
        found: dict[str, Any] = {
            "setting": self.setting,
            "on": self.on,
            "reason": self.reason,
            "layers": self.layers,
        }
        if self.offload is not None:
            found["moved_gib"] = round(self.offload.moved_bytes / 2**30, 3)
            found["fetched_ahead"] = self.offload.fetched_ahead
            found["moved"] = self.offload.moved
        return found


def use_checkpoint_offload(
    model: Any, config: TrainConfig, *, checkpointing: bool, device: str
) -> OffloadDecision:
    """Resolve ``config.checkpoint_offload`` for ``model`` (checkpointing already set up)
    and wrap its checkpointed layers when it is on."""
    setting = config.checkpoint_offload
    if setting != "on":
        return OffloadDecision(setting, False, "off (set in the config)")
    if not checkpointing:
        return OffloadDecision(
            setting, False, "off: gradient checkpointing is off, nothing to offload"
        )
    if not str(device).startswith("cuda"):
        return OffloadDecision(
            setting, False, f"off: offloading applies on CUDA only (this run is on {device})"
        )
    offload = HostOffload(next(model.parameters()).device)
    layers = offload_checkpoints(model, offload.hooks)
    if not layers:
        why = "off: the model has no checkpointed layers to wrap"
        return OffloadDecision(setting, False, why)
    why = f"on: {layers} checkpointed layers keep their inputs in pinned host memory"
    return OffloadDecision(setting, True, why, layers, offload)
