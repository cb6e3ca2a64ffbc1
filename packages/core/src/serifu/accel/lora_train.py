"""LoRA's training forward with less kept for backward (``train.lora_backward = "lean"``).

PEFT's LoRA layer computes ``lora_B(lora_A(dropout(x))) * scaling`` and autograd keeps the
dropout's output for ``lora_A``'s weight gradient: a full copy of the layer's input per LoRA
layer, in float32 when no autocast runs (PEFT casts the input up to its float32 weights).
q, k and v (and gate and up) read the same input, so each keeps its own copy. On
stablelm-beta-7b's 16k-token step these copies are the largest item above TRL at the peak
(``bench/gpu/memory_trace.py``).

:class:`LeanLoRA` keeps the input itself instead (the tensor q, k and v share, in its own
dtype: often kept anyway) and the dropout mask packed eight to a byte, and rebuilds the
dropped-out input in backward. The math is PEFT's: dropout, then the two matmuls in the LoRA
weights' dtype, or in autocast's dtype under autocast. Only the random masks differ (drawn
by ``bernoulli_``, not ``nn.Dropout``), as they would with another seed. It is plain PyTorch
(no kernel of its own; Liger and unsloth ship no LoRA function that works with PEFT's
modules), capture-safe (no host sync, the RNG drawn on the device's default generator).

:func:`use_lean_lora` binds :func:`lean_forward` on every PEFT LoRA ``Linear`` (4-bit or
not) of a model; anything else (adapter disabled or merged, several adapters, DoRA, no
gradient) falls back to PEFT's own forward.

A checkpointed layer's recompute must drop out the same inputs as its forward. Eagerly,
checkpointing replays the RNG and ``bernoulli_`` draws the same mask again. A CUDA graph cannot
capture that replay (:mod:`serifu.training.capture`), so there the layers take their masks from
:mod:`serifu.accel.mask_hash` instead (:func:`use_hashed_masks`): a hash of the element's
index, the layer and a key drawn once per step, which the recompute computes again: nothing to
replay, and nothing kept from forward to backward.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serifu.accel.mask_hash import LayerHash, MaskClock
    from serifu.config.train import TrainConfig


def _shifts(device: Any) -> Any:
    """Bit positions 0..7 (made where they are used: a tensor cached across a CUDA graph's
    capture would hold what only the graph's replay writes)."""
    import torch

    return torch.arange(8, dtype=torch.uint8, device=device)


def pack_mask(keep: Any) -> Any:
    """A bool mask whose last dimension is a multiple of 8, eight to a byte."""
    import torch

    bits = keep.reshape(*keep.shape[:-1], keep.shape[-1] // 8, 8).to(torch.uint8)
    return (bits << _shifts(keep.device)).sum(-1, dtype=torch.uint8)


def unpack_mask(packed: Any, width: int) -> Any:
    out = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 1
    return out.reshape(*packed.shape[:-1], width).bool()


def draw_mask(x: Any, p: float) -> Any:
    """Which inputs dropout keeps (probability ``1 - p``), on the device's default generator."""
    import torch

    return torch.empty(x.shape, dtype=torch.bool, device=x.device).bernoulli_(1.0 - p)


def _drop_(t: Any, keep: Any, p: float) -> Any:
    """Dropout with the mask ``keep`` applied to ``t`` in place (scaled by 1 / (1 - p) as
    torch's); ``keep`` None: ``t`` as it is."""
    return t if keep is None else t.mul_(keep).mul_(1.0 / (1.0 - p))


def _dropped(x: Any, keep: Any, p: float, dtype: Any) -> Any:
    """``dropout(x)`` for the mask ``keep``, in ``dtype``, in one new tensor (no second
    full-size temporary)."""
    return x.to(dtype) if keep is None else _drop_(x.to(dtype, copy=True), keep, p)


def _mask_for(x: Any, p: float, hashing: LayerHash | None) -> tuple[Any, Any]:
    """Dropout's mask for ``x`` (None without dropout) and its packed form (eight to a byte
    where the width allows, else the bool mask): drawn by ``bernoulli_``, or ``hashing``'s
    (the same in the forward and its recompute)."""
    if p <= 0:
        return None, None
    width = x.shape[-1]
    packs = width % 8 == 0
    if hashing is not None:
        packed = hashing.mask(tuple(x.shape), p, packs)
        return (unpack_mask(packed, width) if packs else packed), packed
    keep = draw_mask(x, p)
    return keep, (pack_mask(keep) if packs else keep)


def _compute_dtype(x: Any, weight: Any) -> Any:
    import torch

    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return weight.dtype


def _lean_function() -> type:
    import torch

    class LeanLoRA(torch.autograd.Function):
        """``scaling * B(A(dropout(x)))`` keeping ``x`` and a 1-bit mask for backward."""

        @staticmethod
        def forward(
            ctx: Any, x: Any, a: Any, b: Any, p: float, scaling: float, dtype: Any, hashing: Any
        ) -> Any:
            keep, packed = _mask_for(x, p, hashing)
            with torch.autocast(x.device.type, enabled=False):
                h = _dropped(x, keep, p, dtype) @ a.to(dtype).t()  # (..., r)
                out = (h @ b.to(dtype).t()) * scaling
            ctx.save_for_backward(x, packed, a, b, h)
            ctx.p, ctx.scaling, ctx.dtype = p, scaling, dtype
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            x, packed, a, b, h = ctx.saved_tensors
            p, dtype = ctx.p, ctx.dtype
            keep = None
            if packed is not None:
                keep = packed if packed.dtype == torch.bool else unpack_mask(packed, x.shape[-1])
            g = grad.to(dtype) * ctx.scaling
            g2, h2 = g.reshape(-1, g.shape[-1]), h.reshape(-1, h.shape[-1])
            grad_b = (g2.t() @ h2).to(b.dtype)  # (out, r)
            dh = g @ b.to(dtype)  # (..., r)
            dh2 = dh.reshape(-1, dh.shape[-1])
            xd = _dropped(x, keep, p, dtype)
            grad_a = (dh2.t() @ xd.reshape(-1, xd.shape[-1])).to(a.dtype)  # (r, in)
            del xd
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = _drop_(dh @ a.to(dtype), keep, p).to(x.dtype)
            return grad_x, grad_a, grad_b, None, None, None, None

    return LeanLoRA


_FUNCTION: list[Any] = []
HASH_ATTR = "serifu_lean_hash"
"""A lean layer's instance attribute: its :class:`LayerHash` (masks from a hash)."""


def lean_lora(
    x: Any, a: Any, b: Any, p: float, scaling: float, hashing: LayerHash | None = None
) -> Any:
    """``scaling * (dropout_p(x) @ a.T) @ b.T`` in the compute dtype (see the module doc);
    ``hashing``: the layer's masks from a hash instead of ``bernoulli_``."""
    if not _FUNCTION:
        _FUNCTION.append(_lean_function())
    return _FUNCTION[0].apply(x, a, b, p, scaling, _compute_dtype(x, a), hashing)


def _plain(layer: Any) -> str | None:
    """The one active plain LoRA adapter that :func:`lean_forward` can run, else None."""
    active = layer.active_adapters
    if layer.disable_adapters or layer.merged or len(active) != 1:
        return None
    name = active[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}):
        return None
    if getattr(layer, "use_dora", {}).get(name, False):
        return None
    if getattr(layer.lora_B[name], "bias", None) is not None:  # lora_bias = True
        return None
    return str(name)


def lean_forward(self: Any, x: Any, *args: Any, _peft: Any = None, **kwargs: Any) -> Any:
    """A PEFT LoRA ``Linear``'s forward through :class:`LeanLoRA` while training."""
    import torch

    name = _plain(self)
    if name is None or args or kwargs or not torch.is_grad_enabled():  # adapter_names & co.
        return _peft(x, *args, **kwargs)
    result = self.base_layer(x)
    dropout = self.lora_dropout[name]
    p = float(dropout.p) if isinstance(dropout, torch.nn.Dropout) and dropout.training else 0.0
    a, b = self.lora_A[name].weight, self.lora_B[name].weight
    hashing = self.__dict__.get(HASH_ATTR)
    return result + lean_lora(x, a, b, p, float(self.scaling[name]), hashing).to(result.dtype)


def use_lean_lora(model: Any) -> int:
    """Bind :func:`lean_forward` on every PEFT LoRA ``Linear`` of ``model`` (an instance
    attribute: ``serifu.training.kernels.restore_point`` undoes it); returns how many."""
    from functools import partial

    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:
        return 0
    bnb: tuple[type, ...] = ()
    try:
        from peft.tuners.lora import bnb as peft_bnb

        bnb = tuple(
            getattr(peft_bnb, n) for n in ("Linear4bit", "Linear8bitLt") if hasattr(peft_bnb, n)
        )
    except ImportError:
        pass
    layers: list[Any] = [
        m for m in model.modules() if isinstance(m, (Linear, *bnb)) and "forward" not in m.__dict__
    ]
    for layer in layers:
        layer.forward = types.MethodType(partial(lean_forward, _peft=layer.forward), layer)
    return len(layers)


def use_hashed_masks(model: Any, *, compiled: bool = False) -> MaskClock | None:
    """Give every lean layer of ``model`` (:func:`use_lean_lora`) masks from a hash of its
    position among them and a per-step key (:class:`serifu.accel.mask_hash.MaskClock`, kept on
    the model as ``serifu_mask_clock``: :func:`serifu.accel.mask_hash.advance` draws the next
    key). ``compiled``: the hash as one compiled kernel (CUDA with a compiler). Returns the
    clock, or None when no layer runs the lean function."""
    from serifu.accel.mask_hash import CLOCK_ATTR, LayerHash, MaskClock

    lean = [m for m in model.modules() if getattr(m.forward, "func", None) is lean_forward]
    if not lean:
        return None
    device = next(p for p in model.parameters()).device
    clock = MaskClock.on(device, compiled=compiled)
    for salt, layer in enumerate(lean):
        layer.__dict__[HASH_ATTR] = LayerHash.of(clock, salt)
    model.__dict__[CLOCK_ATTR] = clock
    return clock


def drop_hashed_masks(model: Any) -> None:
    """Undo :func:`use_hashed_masks`: the lean layers draw by ``bernoulli_`` again."""
    from serifu.accel.mask_hash import CLOCK_ATTR

    for m in model.modules():
        m.__dict__.pop(HASH_ATTR, None)
    model.__dict__.pop(CLOCK_ATTR, None)


def use_lora_backward(model: Any, config: TrainConfig) -> int:
    """``train.lora_backward``: with ``"lean"``, :func:`use_lean_lora`; returns the LoRA
    layers that run it (0 with ``"peft"``)."""
    return use_lean_lora(model) if config.lora_backward == "lean" else 0
