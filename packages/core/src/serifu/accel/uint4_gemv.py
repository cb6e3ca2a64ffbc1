"""4-bit reply weights on Serifu's own Triton GEMV (``uint4`` grid), for replies.

The ``uint4`` reply path (:func:`serifu.inference.quantize.quantize_uint4_`) ran GemLite's
A16W4 kernels until session 29. At batch 1 they read their quarter of the bytes at 15-42 % of
an H200's bandwidth (session 17), while :mod:`serifu.accel.gemv` reads bf16 weights at ~87 %; so since
session 25 the 4-bit replies are slower than bf16 ones (line-3.6b on an H200: 0.80x, session
26). :class:`Uint4Linear` keeps the same codes (:func:`~serifu.inference.quantize.uint4_quantize`,
one scale and zero per 64 inputs) in a layout made for a one-row product (:func:`pack_uint4`:
eight rows' codes to an int32 word, so each input a thread loads serves eight rows) and runs
them on :mod:`serifu.accel.uint4_gemv_kernels` (each code a float in one LOP3, one FFMA, the
scale applied once per row per thread's 16-32 inputs; float32 sums, bias in the kernel, no
split-K). 0.56 bytes a weight (codes, float16 scale and shift) against bf16's 2. Like
:class:`serifu.accel.gemv.GemvLinear` it takes the norm before it and the MLP activation after
it folded in (the decoder's ``use_gemv(model, fold=True)``): on line-3.6b, whose adapters sit on
``query_key_value``, the MLP's norm and GELU; a norm a LoRA layer reads stays.

Inputs of more than one row (prompts) dequantise the layer's weight in one Triton kernel
(:meth:`Uint4Linear.dequantised`) and run ``F.linear``; so does the CPU, in PyTorch. The
default since session 29 (``SERIFU_UINT4_KERNEL=gemlite`` or ``kernel="gemlite"``: GemLite's).
Measured (docs/benchmarks.md, "Session 29", one H100): per layer 2.2-2.6 TB/s, 70-85 % of the
bandwidth on the 3.6-7B models' large shapes (GemLite's 1.1-1.8 TB/s); whole replies 1.51x bf16
on line-3.6b and 1.69x on stablelm-beta-7b (GemLite's 1.02x and 1.22x, same runs).
"Session 27" has the two versions before it (one row per thread; as fast as GemLite's).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from serifu.accel.gemv import Foldable
from serifu.inference.quantize import UINT4_GROUP as GROUP
from serifu.inference.quantize import uint4_quantize


def pack_uint4(
    codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``uint4_quantize``'s codes [N, K] (0-15), scales and zeros [N, K/64] as the kernel's
    ``(packed [N/8, K] int32, scale, shift [N/8, K/64, 8] float16)``, rows padded to a multiple
    of 8 with zeros: nibble ``i`` (bits ``4i``) of word ``(w, k)`` is row ``8w + i``'s code at
    input ``k``; ``scale[w, g, i]`` and ``shift[w, g, i]`` are row ``8w + i``'s for group ``g``;
    the weight is ``code * scale + shift`` (``shift = -zero * scale``; float16 keeps the grid
    4x closer than bf16, whose 8-bit mantissa moves a shift by up to 0.5 % of the layer's
    largest weight)."""
    n, k = codes.shape
    pad = -n % 8
    nib = torch.nn.functional.pad(codes.to(torch.int32), (0, 0, 0, pad)).reshape(-1, 8, k)
    words = torch.zeros(nib.shape[0], k, dtype=torch.int32, device=codes.device)
    for i in range(8):  # int32 wraps: nibble 7 lands in the sign bit, as the kernel reads it
        words |= nib[:, i] << (4 * i)
    scale = scales.float()
    shift = -zeros.float() * scale

    def by_word(t: torch.Tensor) -> torch.Tensor:  # [N, G] -> [N/8, G, 8]
        t = torch.nn.functional.pad(t, (0, 0, 0, pad)).reshape(-1, 8, t.shape[1])
        return t.transpose(1, 2).contiguous().to(torch.float16)

    return words, by_word(scale), by_word(shift)


def unpack_uint4(
    packed: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, n: int | None = None
) -> torch.Tensor:
    """The float32 weight [n, K] the packed codes stand for (``n``: the rows before padding)."""
    words, k = packed.shape
    sh = 4 * torch.arange(8, device=packed.device, dtype=torch.int32).reshape(1, 8, 1)
    codes = ((packed[:, None, :] >> sh) & 15).float()  # [N/8, 8, K]
    s = scale.float().transpose(1, 2).repeat_interleave(GROUP, -1)  # [N/8, 8, K]
    m = shift.float().transpose(1, 2).repeat_interleave(GROUP, -1)
    return (codes * s + m).reshape(words * 8, k)[: words * 8 if n is None else n]


@torch.library.custom_op("serifu::uint4_gemv", mutates_args=())
def uint4_gemv(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    bias: torch.Tensor | None,
    n: int,
    norm: int = 0,
    norm_weight: torch.Tensor | None = None,
    norm_sums: torch.Tensor | None = None,
    eps: float = 0.0,
    act: int = 0,
) -> torch.Tensor:
    """``act(F.linear(norm(x), W, bias))`` for an ``x`` of one row (any leading dims of size 1)
    with the packed weight's ``n`` rows ``W`` (a folded norm and activation as
    :func:`serifu.accel.gemv.gemv` takes them): the Triton kernel on CUDA; elsewhere the
    dequantised weight in float32 through ``gemv``'s PyTorch reference."""
    if not x.is_cuda:
        from serifu.accel.gemv import gemv

        w = unpack_uint4(packed, scale, shift, n)
        b = bias.float() if bias is not None else None
        return gemv(x.float(), w, b, norm, norm_weight, norm_sums, eps, act).to(x.dtype)
    from serifu.accel import uint4_gemv_kernels

    out = torch.empty(*x.shape[:-1], n, device=x.device, dtype=x.dtype)
    folded = (norm, norm_weight, norm_sums, eps, act)
    xf = x.reshape(-1).contiguous()
    uint4_gemv_kernels.launch(xf, packed, scale, shift, bias, n, out.view(-1), folded)
    return out


@uint4_gemv.register_fake
def _(x: torch.Tensor, packed: Any, scale: Any, shift: Any, bias: Any, n: int, *_: Any) -> Any:
    return x.new_empty(*x.shape[:-1], n)


class Uint4Linear(Foldable, torch.nn.Module):
    """A linear layer on ``uint4`` codes (:func:`pack_uint4`'s layout, buffers): one-row CUDA
    inputs under ``no_grad`` run :func:`uint4_gemv` (with the norm before it and the activation
    after it when :func:`serifu.accel.gemv.use_gemv` folded those in); anything else runs
    ``F.linear`` on the dequantised weight (in the input's dtype)."""

    packed: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        packed: torch.Tensor,
        scale: torch.Tensor,
        shift: torch.Tensor,
        bias: Any,
        out_features: int,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = packed.shape[1], out_features
        self.register_buffer("packed", packed)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, layer: torch.nn.Linear) -> Uint4Linear:
        """``layer``'s weight on the uint4 grid (its bias kept, in bf16)."""
        packed, scale, shift = pack_uint4(*uint4_quantize(layer.weight, GROUP))
        bias = layer.bias.detach().to(torch.bfloat16) if layer.bias is not None else None
        return cls(packed, scale, shift, bias, layer.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and x.numel() == x.shape[-1] and not torch.is_grad_enabled():
            args = (self.packed, self.scale, self.shift, self.bias, self.out_features)
            return uint4_gemv(x, *args, *self.folded())
        return self.forward_unfolded(x, self._linear)

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return torch.nn.functional.linear(x, self.dequantised(x.dtype), b)

    def dequantised(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight [out, in] in ``dtype``: one Triton kernel on CUDA (prompts), PyTorch's
        unpacking elsewhere."""
        n = self.out_features
        if not self.packed.is_cuda:
            return unpack_uint4(self.packed, self.scale, self.shift, n).to(dtype)
        from serifu.accel import uint4_gemv_kernels

        out = torch.empty((n, self.in_features), device=self.packed.device, dtype=dtype)
        uint4_gemv_kernels.dequantise(self.packed, self.scale, self.shift, n, out)
        return out

    def fold_weight(self) -> torch.Tensor:
        return self.dequantised(torch.float32)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


@functools.cache
def kernel_error(device: str) -> str | None:
    """Why the kernels cannot serve on ``device`` (None: small products, plain and with each
    norm and activation folded in, matched the op's PyTorch reference, and the prompts'
    dequantising matched PyTorch's). Checked once per device."""
    from serifu.accel.gemv import CHECK_CASES, check_kwargs
    from serifu.accel.kernel_check import kernel_error as check

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        got, ref = [], []
        g = torch.Generator().manual_seed(0)
        for case in CHECK_CASES:
            shapes = ((1, 1, 320), (37, 320), (37,), (320,), (320,))
            x, w, b, nw, nb = (torch.randn(*s, generator=g).to(torch.bfloat16) for s in shapes)
            packed, scale, shift = pack_uint4(*uint4_quantize(w.float(), GROUP))
            weight = unpack_uint4(packed, scale, shift, 37)  # the sums over the grid's weight
            kw, on = check_kwargs(case, weight, nw, nb, device)
            pd, sd, md, bd = (t.to(device) for t in (packed, scale, shift, b))
            got.append(uint4_gemv(x.to(device), pd, sd, md, bd, 37, **on).float().cpu().flatten())
            ref.append(uint4_gemv(x, packed, scale, shift, b, 37, **kw).float().flatten())
        prompt = Uint4Linear(pd, sd, md, bd, 37).dequantised(torch.float32)  # prompts' kernel
        got.append(prompt.cpu().flatten())
        ref.append(unpack_uint4(packed, scale, shift, 37).flatten())
        return torch.cat(got), torch.cat(ref)

    return check(run, atol=5e-2, rtol=2e-2)
