"""A decoder layer's residual adds inside the GEMVs before them, as those GEMVs' bias.

At batch 1 a Llama layer adds its residual twice: ``h + o_proj(attn)`` and ``h + down(mlp)``.
With the layers' norms folded into the GEMVs that read them (:mod:`serifu.accel.gemv`), each
add is a kernel of its own, since nothing is left for inductor to fuse it into: 64 launches a
token on stablelm-beta-7b, ~62 µs of device time plus their gaps in the graph (session 31's
profile, one H200). ``o_proj`` and ``down_proj`` have no bias, so the residual can be their
GEMV's bias: the kernel adds it to its float32 sums and rounds once, where the layer rounded
the product and then the sum (the same value or one bf16 step apart).

:func:`fold_residuals` swaps each whitelisted decoder layer (``RESIDUAL_LAYERS``) whose two
GEMVs qualify to a subclass whose forward, for one-row inputs without autograd, hands each
GEMV its residual (its :class:`ResidualSlot`, which the GEMV's next call empties) and skips
the add; any other input runs the layer's own forward. On by default since session 33
(stablelm-beta-7b, each contender in fresh processes on an H200: 235.0 against 231.7 tok/s,
both rounds); ``SERIFU_GEMV_RESIDUAL=0`` or ``StaticDecoder(residual=False)`` turns it off.
Gemma 3 normalises the attention output before its add (nothing to fold); GPT-J and GPT-NeoX
add three terms, into layers with a bias.
"""

from __future__ import annotations

from typing import Any

import torch

from serifu.accel import gemv as gemv_module
from serifu.accel.gemv import GemvLinear, ResidualSlot, swap_back, swap_whitelisted

RESIDUAL_LAYERS = ("LlamaDecoderLayer",)
"""Decoder layers whose forward is ``h = h + attn(norm(h)); h = h + mlp(norm(h))`` with the
attention's last layer ``self_attn.o_proj`` and the MLP's ``mlp.down_proj``."""


def _targets(layer: Any) -> tuple[Any, Any]:
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    return getattr(attn, "o_proj", None), getattr(mlp, "down_proj", None)


def _foldable(layer: Any) -> bool:
    """Both GEMVs plain (no bias, nothing folded in, no sibling group)."""
    return all(
        type(m) is GemvLinear
        and m.bias is None
        and m._norm == 0
        and m._act == 0
        and m._sibling is None
        for m in _targets(layer)
    )


def _ready(layer: Any) -> bool:
    """Foldable, and both GEMVs hold the slot :func:`fold_residuals` gave them."""
    return _foldable(layer) and all(m._residual is not None for m in _targets(layer))


class ResidualLayer(torch.nn.Module):
    """A decoder layer (``RESIDUAL_LAYERS``) whose one-row inputs add their residuals inside
    ``o_proj``'s and ``down_proj``'s GEMVs."""

    unfolded: Any  # the layer's own class

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        x = hidden_states
        if (
            args  # called positionally past the input: the layer's own forward sorts it out
            or not (x.is_cuda or gemv_module._CPU_KERNEL)
            or x.numel() != x.shape[-1]
            or torch.is_grad_enabled()
            or not _ready(self)
        ):
            out: torch.Tensor = self.unfolded.forward(self, hidden_states, *args, **kwargs)
            return out
        o_proj, down = _targets(self)
        layer: Any = self
        o_proj._residual.value = x  # o_proj's GEMV adds it (and forgets it)
        h, _ = layer.self_attn(hidden_states=layer.input_layernorm(x), **kwargs)
        down._residual.value = h
        out = layer.mlp(layer.post_attention_layernorm(h))
        return out


def fold_residuals(model: Any) -> int:
    """Swaps the model's whitelisted decoder layers whose ``o_proj`` and ``down_proj`` are
    plain GEMV layers to :class:`ResidualLayer`; returns how many layers now fold them (an
    earlier call's included)."""

    def give_slots(layer: Any) -> None:
        for m in _targets(layer):
            m._residual = ResidualSlot()

    return swap_whitelisted(model, ResidualLayer, RESIDUAL_LAYERS, _foldable, give_slots)


def drop_residuals(model: Any) -> None:
    """Decoder layers back to their own classes, their GEMVs without a pending residual."""
    swap_back(model, ResidualLayer)
    for layer in model.modules():
        if isinstance(layer, GemvLinear):
            layer.__dict__.pop("_residual", None)  # back to the class's: none


def residual_layers(model: Any) -> int:
    """How many decoder layers add their residuals inside their GEMVs."""
    return sum(isinstance(m, ResidualLayer) for m in model.modules())
