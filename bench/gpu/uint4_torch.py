"""``uint4`` codes as plain PyTorch layers that inductor turns into fused GEMVs: a lever
measured against GemLite (``generate_speed.py --quant uint4t``, ``gemv_shapes.py``), not the
product's path (it was 2.5-3x slower than GemLite; docs/benchmarks.md).

GemLite's Triton kernels read the 4-bit weights at ~21 % of the bandwidth at batch 1 and
leave the unmerged LoRA, the bias and the dequantisation as separate steps
(docs/benchmarks.md). Here a decode step (few rows) writes the layer as one expression:
unpack the two codes of each byte, ``(code - zero) * scale``, multiply by the input and sum.
Compiled (:class:`serifu.accel.decode.StaticDecoder` with ``compile=True``), inductor emits
one Triton reduction per layer, with the bias, an unmerged LoRA's reductions
(:mod:`serifu.accel.lora_decode`) and the neighbouring element-wise work fused in. Prompt
passes (many rows) dequantise the weight and run one matmul.

The codes are :func:`serifu.inference.quantize.uint4_quantize`'s (group 64, one bf16 scale and
zero per group: GemLite's format and bytes), so an adapter trained on that grid
(``train.quant_type = "uint4"``) fits it as it fits GemLite's layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from serifu.accel.lora_decode import DECODE_ROWS


def pack_uint4(codes: torch.Tensor) -> torch.Tensor:
    """(out, in) codes 0..15 as (out, in / 2) bytes: even inputs in the low nibble."""
    c = codes.to(torch.uint8)
    return c[:, 0::2] | (c[:, 1::2] << 4)


def unpack_uint4(packed: torch.Tensor) -> torch.Tensor:
    """:func:`pack_uint4`'s inverse: (out, in) codes as uint8."""
    low, high = packed & 0xF, packed >> 4
    return torch.stack((low, high), dim=-1).reshape(packed.shape[0], -1)


class Uint4Linear(torch.nn.Module):
    """A linear layer on packed ``uint4`` codes; ``forward`` matches ``F.linear`` on the
    dequantised weight (float32 sums, output in the input's dtype)."""

    packed: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor

    def __init__(
        self,
        codes: torch.Tensor,
        scales: torch.Tensor,
        zeros: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = codes.shape
        self.group_size = self.in_features // scales.shape[1]
        self.register_buffer("packed", pack_uint4(codes).to(codes.device))
        # one bf16 scale and zero per group, as GemLite stores them (28 % of bf16's bytes)
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.register_buffer("zeros", zeros.to(torch.bfloat16))
        self.bias = (
            torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
            if bias is not None
            else None
        )

    def _groups(self) -> torch.Tensor:
        """The weight the codes stand for, float32, as (out, groups, group size)."""
        groups = unpack_uint4(self.packed).view(self.out_features, -1, self.group_size).float()
        return (groups - self.zeros.float()[..., None]) * self.scales.float()[..., None]

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (out, in) weight the codes stand for."""
        return self._groups().reshape(self.out_features, self.in_features).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // max(x.shape[-1], 1)
        if rows > DECODE_ROWS:  # a prompt pass: one matmul on the dequantised weight
            return F.linear(x, self.dequantized(x.dtype), self.bias)
        w = self._groups()
        xs = x.float().reshape(*x.shape[:-1], 1, w.shape[1], self.group_size)
        y = (xs * w).sum((-1, -2))
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, group_size={self.group_size}"
        )


def uint4_layer(layer: torch.nn.Linear, group_size: int) -> Uint4Linear:
    """``layer`` as a :class:`Uint4Linear` (the codes of ``uint4_quantize``)."""
    from serifu.inference.quantize import uint4_quantize

    codes, scales, zeros = uint4_quantize(layer.weight, group_size)
    bias = layer.bias.data if layer.bias is not None else None
    return Uint4Linear(codes, scales, zeros, bias)


def quantize_uint4_torch_(model: Any, group_size: int = 64) -> Any:
    """The base's linear layers (those GemLite would take) as :class:`Uint4Linear`, in place;
    an unmerged PEFT LoRA decodes as reductions (the product's uint4 layout)."""
    from serifu.accel.lora_decode import fuse_lora_for_decode_
    from serifu.inference.quantize import _base_linears

    if next(model.parameters()).device.type == "cuda":
        model.to(torch.bfloat16)
    for parent, name, layer in _base_linears(model):
        setattr(parent, name, uint4_layer(layer, group_size))
    fuse_lora_for_decode_(model)
    return model
