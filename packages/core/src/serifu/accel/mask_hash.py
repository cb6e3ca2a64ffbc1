"""Dropout masks from a hash, so a checkpointed recompute makes the same mask with no RNG replay.

A captured training step (:mod:`serifu.training.capture`) cannot replay the RNG inside its CUDA
graph, so a checkpointed layer's recompute would draw other dropout masks than its forward.
Here a mask is a function of the element's index, the layer (a salt) and one key per step
(:class:`MaskClock`, drawn on the device from torch's generator, so the graph draws a new one at
each replay and the run's seed decides them all): the forward and the recompute compute the same
mask, and nothing is kept between them (keeping each layer's mask would cost gemma-3-270m's
16k-token step ~45 MiB, a step whose peak is ~1.6 GiB).

The hash is two rounds of ``lowbias32`` (C. Wellons' 32-bit integer hash: each bit of the output
depends on every input bit) on 32-bit values held in int64 tensors, every product kept under
2**63. A mask of more than 2**32 elements repeats itself. On CUDA the hash and the packing run as
one compiled kernel (``compiled``): eagerly each step of the hash would be a full-size int64
temporary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

M32 = 0xFFFFFFFF
CLOCK_ATTR = "serifu_mask_clock"
"""The model's instance attribute holding its :class:`MaskClock`."""


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c`` modulo 2**32 for ``x`` < 2**32, without overflowing int64 (c split in halves)."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & M32


def lowbias32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (a bijection) of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def keep_mask(
    key: torch.Tensor, salt: int | torch.Tensor, shape: tuple[int, ...], p: float
) -> torch.Tensor:
    """Which of ``shape``'s elements dropout with probability ``p`` keeps: a bool tensor, a
    function of (``key``, ``salt``, element index) only. ``key``: an int64 scalar tensor;
    ``salt``: the layer's number (a tensor where the function is compiled: one kernel for
    every layer)."""
    index = torch.arange(math.prod(shape), dtype=torch.int64, device=key.device).reshape(shape)
    layer = lowbias32((key ^ (salt * 0x9E3779B1)) & M32)  # this layer's key
    bits = lowbias32(lowbias32(index & M32 ^ layer) ^ (key & M32))
    return (bits >> 8) >= round(p * (1 << 24))  # a 24-bit uniform against p


def packed_keep_mask(
    key: torch.Tensor, salt: int | torch.Tensor, shape: tuple[int, ...], p: float
) -> torch.Tensor:
    """:func:`keep_mask` packed eight to a byte along the last dimension (a multiple of 8),
    by :func:`serifu.accel.lora_train.pack_mask`, as a drawn one is packed."""
    from serifu.accel.lora_train import pack_mask

    return pack_mask(keep_mask(key, salt, shape, p))


@dataclass
class MaskClock:
    """The step's key the masks hash (an int64 scalar on the device) and how they are made."""

    key: torch.Tensor
    compiled: bool = False
    _kernels: dict[bool, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def on(cls, device: Any, *, compiled: bool = False) -> MaskClock:
        return cls(torch.zeros((), dtype=torch.int64, device=device), compiled)

    def advance(self) -> None:
        """Draw the next step's key on the device (no host sync; a CUDA graph replays the draw
        with a new offset each time, as it does for dropout)."""
        self.key.copy_(torch.randint(0, 1 << 31, (), device=self.key.device))

    def mask(
        self, salt: int | torch.Tensor, shape: tuple[int, ...], p: float, packs: bool
    ) -> torch.Tensor:
        fn: Any = packed_keep_mask if packs else keep_mask
        if self.compiled:
            if packs not in self._kernels:
                self._kernels[packs] = torch.compile(fn, dynamic=False, fullgraph=True)
            fn = self._kernels[packs]
        return fn(self.key, salt, shape, p)


@dataclass
class LayerHash:
    """One lean LoRA layer's masks: its ``salt`` (an int64 scalar on the clock's device) under
    the model's clock."""

    clock: MaskClock
    salt: torch.Tensor

    @classmethod
    def of(cls, clock: MaskClock, number: int) -> LayerHash:
        return cls(clock, torch.tensor(number, dtype=torch.int64, device=clock.key.device))

    def mask(self, shape: tuple[int, ...], p: float, packs: bool) -> torch.Tensor:
        return self.clock.mask(self.salt, shape, p, packs)


def advance(model: Any) -> None:
    """Draw the next step's key for ``model``'s hashed masks (nothing when it has none)."""
    clock = model.__dict__.get(CLOCK_ATTR)
    if clock is not None:
        clock.advance()
