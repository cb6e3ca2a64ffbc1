"""An unmerged LoRA that costs (almost) no extra kernels per decode step.

At batch 1 a PEFT LoRA layer adds two tiny matmuls and a scaled add to its base layer's
GEMV: three kernel launches, each latency-bound. On stablelm-beta-7b's uint4 base that took
back everything the 4-bit weights saved (1.00x bf16, docs/benchmarks.md). For the few rows of
a decode step this module writes the same product as two reductions instead,
``t = sum_k x_k A_rk`` then ``d = scale * sum_r t_r B_nr``: inside a compiled step inductor
fuses the second into the add and whatever consumes the layer's output, and the first of
layers that read the same input (q, k, v) into one kernel. Prompt passes (many rows) keep
PEFT's matmuls, in PEFT's order of operations.

:func:`fuse_lora_for_decode_` switches the class of every plain PEFT ``lora.Linear`` in a
model to a subclass whose ``forward`` does this; anything else (adapter disabled or merged,
several active adapters, DoRA or other variants, training, mixed-batch adapter names) falls
back to PEFT's own forward, so ``disable_adapter()`` still scores the base.
"""

from __future__ import annotations

import functools
from typing import Any

DECODE_ROWS = 16
"""Up to this many rows (batch x new tokens) the LoRA runs as reductions."""


def lora_delta(x: Any, a: Any, b: Any, scale: float) -> Any:
    """``scale * B (A x)`` over the last dimension of ``x`` for ``A`` (r, in), ``B`` (out, r):
    as two reductions for few rows (decode), as PEFT's two matmuls otherwise."""
    rows = x.numel() // max(x.shape[-1], 1)
    if rows <= DECODE_ROWS:
        t = (x.unsqueeze(-2) * a).sum(-1)  # (..., r)
        return (t.unsqueeze(-2) * b).sum(-1) * scale  # (..., out)
    return (x @ a.t()) @ b.t() * scale


@functools.cache
def _decode_class() -> type:
    from peft.tuners.lora import layer

    class DecodeLoraLinear(layer.Linear):
        """PEFT's ``lora.Linear`` with :func:`lora_delta` for one active plain LoRA."""

        def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
            active = self.active_adapters
            if (
                args
                or kwargs
                or self.training
                or self.disable_adapters
                or self.merged
                or len(active) != 1
                or active[0] not in self.lora_A
                or active[0] in getattr(self, "lora_variant", {})  # DoRA & co. (peft >= 0.15)
                or getattr(self, "use_dora", {}).get(active[0], False)
            ):
                return super().forward(x, *args, **kwargs)
            name = active[0]
            result = self.base_layer(x)
            a, b = self.lora_A[name].weight, self.lora_B[name].weight
            delta = lora_delta(x.to(a.dtype), a, b, self.scaling[name])
            return (result + delta).to(result.dtype)

    return DecodeLoraLinear


def fuse_lora_for_decode_(model: Any) -> int:
    """Give every plain PEFT ``lora.Linear`` in ``model`` the decode-friendly forward, in
    place; returns how many layers changed (0 without PEFT layers)."""
    try:
        from peft.tuners.lora import layer
    except ImportError:
        return 0
    cls = _decode_class()
    n = 0
    for module in model.modules():
        if type(module) is layer.Linear:
            module.__class__ = cls
            n += 1
    return n
