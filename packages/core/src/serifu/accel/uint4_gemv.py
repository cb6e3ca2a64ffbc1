"""4-bit reply weights on Serifu's own Triton GEMV (``uint4`` grid, opt-in), for replies.

The ``uint4`` reply path (:func:`serifu.inference.quantize.quantize_uint4_`) runs GemLite's
A16W4 kernels. At batch 1 they read their quarter of the bytes at 15-42 % of an H200's
bandwidth (session 17), while :mod:`serifu.accel.gemv` reads bf16 weights at ~87 %; so since
session 25 the 4-bit replies are slower than bf16 ones (line-3.6b on an H200: 0.80x, session
26). :class:`Uint4Linear` keeps the same codes (:func:`~serifu.inference.quantize.uint4_quantize`,
one scale and zero per 64 inputs) in a layout made for a one-row product
(:func:`pack_uint4`: each byte two codes of one group, each group's scale and shift next to
its 32 bytes) and runs them with the GEMV's design: a few output rows per program over the
whole input, the codes unpacked and scaled in registers, float32 sums, bias in the kernel, no
split-K. 0.56 bytes a weight (codes, float16 scale and shift) against bf16's 2.

Inputs of more than one row (prompts) and the CPU dequantise the layer's weight and run
``F.linear``. Chosen with ``quantize_uint4_(..., kernel="serifu")`` or
``SERIFU_UINT4_KERNEL=serifu``. GemLite stays the default: measured in session 27 (H100),
this kernel's layers run as fast as GemLite's (53.5 against 53.0 µs per line-3.6b layer), and
its first token was slower (56 against 22 ms) while prompts dequantised in eager PyTorch; they
now dequantise in one Triton kernel (``Uint4Linear.dequantised``; not yet timed on a GPU).
docs/benchmarks.md, "Session 27", also tells of a second version that lost.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from serifu.inference.quantize import UINT4_GROUP as GROUP
from serifu.inference.quantize import uint4_quantize


def pack_uint4(
    codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``uint4_quantize``'s codes [N, K] (0-15), scales and zeros [N, K/64] as the kernel's
    ``(packed [N, K/2] uint8, scale, shift [N, K/64] float16)``: byte ``32 g + t`` of a row
    holds the codes of inputs ``64 g + t`` (low nibble) and ``64 g + 32 + t`` (high); the weight
    is ``code * scale + shift`` (``shift = -zero * scale``; float16 keeps the grid 4x closer than
    bf16, whose 8-bit mantissa moves a shift by up to 0.5 % of the layer's largest weight)."""
    n, k = codes.shape
    groups = codes.to(torch.uint8).reshape(n, k // GROUP, 2, GROUP // 2)
    packed = (groups[:, :, 0] | (groups[:, :, 1] << 4)).reshape(n, k // 2)
    scale = scales.float()
    shift = -zeros.float() * scale
    return packed.contiguous(), scale.to(torch.float16), shift.to(torch.float16)


def unpack_uint4(packed: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The float32 weight [N, K] the packed codes stand for."""
    n, half = packed.shape
    groups = packed.reshape(n, half // (GROUP // 2), GROUP // 2)
    codes = torch.cat([groups & 15, groups >> 4], -1).float()  # [N, G, 64]
    return (codes * scale.float()[..., None] + shift.float()[..., None]).reshape(n, half * 2)


@torch.library.custom_op("serifu::uint4_gemv", mutates_args=())
def uint4_gemv(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``F.linear`` of an ``x`` of one row (any leading dims of size 1) with the packed
    weight: the Triton kernel on CUDA, the dequantised weight elsewhere."""
    if not x.is_cuda:
        w = unpack_uint4(packed, scale, shift)
        b = bias.float() if bias is not None else None
        return torch.nn.functional.linear(x.float(), w, b).to(x.dtype)
    from serifu.accel import uint4_gemv_kernels

    out = torch.empty(*x.shape[:-1], packed.shape[0], device=x.device, dtype=x.dtype)
    uint4_gemv_kernels.launch(x.reshape(-1).contiguous(), packed, scale, shift, bias, out.view(-1))
    return out


@uint4_gemv.register_fake
def _(x: torch.Tensor, packed: torch.Tensor, *_rest: Any) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], packed.shape[0])


class Uint4Linear(torch.nn.Module):
    """A linear layer on ``uint4`` codes (:func:`pack_uint4`'s layout, buffers): one-row CUDA
    inputs under ``no_grad`` run :func:`uint4_gemv`; anything else runs ``F.linear`` on the
    dequantised weight (in the input's dtype)."""

    packed: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self, packed: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, bias: Any
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = packed.shape[1] * 2, packed.shape[0]
        self.register_buffer("packed", packed)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, layer: torch.nn.Linear) -> Uint4Linear:
        """``layer``'s weight on the uint4 grid (its bias kept, in bf16)."""
        packed, scale, shift = pack_uint4(*uint4_quantize(layer.weight, GROUP))
        bias = layer.bias.detach().to(torch.bfloat16) if layer.bias is not None else None
        return cls(packed, scale, shift, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and x.numel() == x.shape[-1] and not torch.is_grad_enabled():
            return uint4_gemv(x, self.packed, self.scale, self.shift, self.bias)
        w = self.dequantised(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return torch.nn.functional.linear(x, w, b)

    def dequantised(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight [out, in] in ``dtype``: one Triton kernel on CUDA (prompts), PyTorch's
        unpacking elsewhere."""
        if not self.packed.is_cuda:
            return unpack_uint4(self.packed, self.scale, self.shift).to(dtype)
        from serifu.accel import uint4_gemv_kernels

        shape = (self.out_features, self.in_features)
        out = torch.empty(shape, device=self.packed.device, dtype=dtype)
        uint4_gemv_kernels.dequantise(self.packed, self.scale, self.shift, out)
        return out

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


@functools.cache
def kernel_error(device: str) -> str | None:
    """Why the kernels cannot serve on ``device`` (None: a small product ran and matched the
    dequantised weight's, and the prompts' dequantising matched PyTorch's). Checked once per
    device."""
    from serifu.accel.kernel_check import kernel_error as check

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        w, x, b = (torch.randn(*s, generator=g) for s in ((37, 320), (1, 1, 320), (37,)))
        packed, scale, shift = pack_uint4(*uint4_quantize(w, GROUP))
        x, b = x.to(torch.bfloat16), b.to(torch.bfloat16)
        ref = torch.nn.functional.linear(x.float(), unpack_uint4(packed, scale, shift), b.float())
        on = [t.to(device) for t in (x, packed, scale, shift, b)]
        prompt = Uint4Linear(*on[1:]).dequantised(torch.float32)  # the prompts' kernel
        got = torch.cat([uint4_gemv(*on).float().flatten(), prompt.flatten()])
        return got.cpu(), torch.cat([ref.flatten(), unpack_uint4(packed, scale, shift).flatten()])

    return check(run, atol=5e-2, rtol=2e-2)
