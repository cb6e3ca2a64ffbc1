"""Triton kernels of :mod:`serifu.accel.uint4_gemv`: ``y = W x (+ b)`` for one row ``x`` over
4-bit weights (each program a few output rows over the whole input, as
:mod:`serifu.accel.gemv_kernels`), and the weight dequantised to bf16 for prompts.

Layout (:func:`serifu.accel.uint4_gemv.pack_uint4`): row ``n``'s int32 word ``8 g + u`` holds
in its nibble ``j`` (bits ``4j``) the code of input ``64 g + 8 j + u``; ``scale[n, g]`` and
``shift[n, g]`` give the weight ``code * scale + shift``. So the ``j``-th nibbles of a group's
8 words meet 8 consecutive inputs (one 32-byte load of float32 ``x``).

A code becomes a float without an int-to-float conversion (a quarter-rate instruction that
capped session 26's first kernel, and GemLite's, at ~40 % of the bandwidth): masked in place
and OR-ed with 1.0's bits it is ``f = 1 + code * 2**(p - 23)`` for the nibble's bit position
``p``, one LOP3; the weight is then one FMA, ``f * (scale * 2**(23 - p)) + (shift - scale *
2**(23 - p))``, exact enough for ``p >= 8`` (the constant's rounding is ``scale * 2**-(p+1)``),
so nibbles 0-1 are read from the word shifted left by 12 and nibbles 5-7 shifted right by 12.
That is ~3 instructions a code instead of ~8. The masks and 1.0's bits come as arguments so
that the compiler keeps them in registers and fuses each mask-and-OR into one LOP3.

Imported only on CUDA; configurations autotuned per (out, in) at the first call (the decoder's
warm-up steps, before its CUDA graph is recorded).
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton kernels' parameters are pointers and constexprs that Triton types itself)
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

CONFIGS = [
    triton.Config({"BLOCK_N": n, "GROUPS": g, "SPLIT": k}, num_warps=w)
    for n, g, k, w in (
        (32, 1, 1, 2),
        (64, 1, 1, 4),
        (16, 4, 1, 2),
        (32, 4, 1, 4),
        (64, 4, 1, 4),
        (16, 2, 2, 2),
        (32, 4, 2, 4),
        (32, 1, 4, 4),
        (16, 2, 4, 2),
        (16, 4, 4, 2),
        (32, 2, 4, 4),
        (16, 2, 8, 2),
        (32, 2, 8, 2),
        (16, 2, 16, 2),
    )
]
MAX_SPLIT = 16

MASKS = (0xF00, 0xF000, 0xF0000, 0x3F800000)  # nibbles at bits 8, 12, 16; 1.0's bits


def _groups_divide(configs: list[Any], named_args: dict[str, Any], **_: Any) -> list[Any]:
    """Only tiles whose groups times input splits divide the input's groups (no masks along
    the input; the one-group, one-split tiles always do)."""
    g = named_args["K"] // 64
    return [c for c in configs if g % (c.kwargs["GROUPS"] * c.kwargs["SPLIT"]) == 0]


@triton.autotune(
    configs=CONFIGS, key=["N", "K"], prune_configs_by={"early_config_prune": _groups_divide}
)
@triton.heuristics({"EVEN_N": lambda a: a["N"] % a["BLOCK_N"] == 0})
@triton.jit
def _uint4_gemv(
    x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, y_ptr, part_ptr, N, K, s_qn, k8, k12, k16, one,
    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, GROUPS: tl.constexpr, SPLIT: tl.constexpr,
    EVEN_N: tl.constexpr,
):  # fmt: skip
    """Program: ``BLOCK_N`` output rows over the ``program_id(1)``-th of ``SPLIT`` parts of
    the input, ``GROUPS`` groups of 64 at a time, as a [GROUPS, BLOCK_N, 8 words] tile (so a
    thread's ``x`` serves several rows); ``x`` float32. With ``SPLIT`` > 1 the row sums go to
    ``part_ptr`` [SPLIT, N] (float32; :func:`_sum_parts` adds them up): a layer of few rows
    (3072 x 12288) has too few programs alone to keep enough loads in flight. ``s_qn`` (the
    words' row stride) comes as an argument so Triton sees it divisible by 16."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = n < N
    u = tl.arange(0, 8)
    G = K // 64
    per = G // SPLIT
    start = tl.program_id(1) * per
    acc = tl.zeros((GROUPS, BLOCK_N, 8), tl.float32)
    for g0 in range(start, start + per, GROUPS):
        g = g0 + tl.arange(0, GROUPS)
        qp = q_ptr + g[:, None, None] * 8 + n[None, :, None] * s_qn + u[None, None, :]
        sp = g[:, None] + n[None, :] * G
        if EVEN_N:
            w = tl.load(qp)
            s = tl.load(s_ptr + sp).to(tl.float32)
            m = tl.load(m_ptr + sp).to(tl.float32)
        else:
            w = tl.load(qp, mask=nm[None, :, None], other=0)
            s = tl.load(s_ptr + sp, mask=nm[None, :], other=0.0).to(tl.float32)
            m = tl.load(m_ptr + sp, mask=nm[None, :], other=0.0).to(tl.float32)
        s8, s12, s16 = (s * 32768.0)[:, :, None], (s * 2048.0)[:, :, None], (s * 128.0)[:, :, None]
        m8, m12, m16 = m[:, :, None] - s8, m[:, :, None] - s12, m[:, :, None] - s16
        xp = x_ptr + g[:, None] * 64 + u[None, :]
        a, c = w << 12, w >> 12
        f = ((a & k12) | one).to(tl.float32, bitcast=True)  # nibble 0, now at bit 12
        acc += (f * s12 + m12) * tl.load(xp)[:, None, :]
        f = ((a & k16) | one).to(tl.float32, bitcast=True)  # nibble 1 at 16
        acc += (f * s16 + m16) * tl.load(xp + 8)[:, None, :]
        f = ((w & k8) | one).to(tl.float32, bitcast=True)
        acc += (f * s8 + m8) * tl.load(xp + 16)[:, None, :]
        f = ((w & k12) | one).to(tl.float32, bitcast=True)
        acc += (f * s12 + m12) * tl.load(xp + 24)[:, None, :]
        f = ((w & k16) | one).to(tl.float32, bitcast=True)
        acc += (f * s16 + m16) * tl.load(xp + 32)[:, None, :]
        f = ((c & k8) | one).to(tl.float32, bitcast=True)  # nibble 5 at 8
        acc += (f * s8 + m8) * tl.load(xp + 40)[:, None, :]
        f = ((c & k12) | one).to(tl.float32, bitcast=True)
        acc += (f * s12 + m12) * tl.load(xp + 48)[:, None, :]
        f = ((c & k16) | one).to(tl.float32, bitcast=True)
        acc += (f * s16 + m16) * tl.load(xp + 56)[:, None, :]
    y = tl.sum(tl.sum(acc, 2), 0)
    if SPLIT > 1:
        tl.store(part_ptr + tl.program_id(1) * N + n, y, mask=nm)
    else:
        if HAS_BIAS:
            y += tl.load(b_ptr + n, mask=nm, other=0.0).to(tl.float32)
        tl.store(y_ptr + n, y.to(y_ptr.dtype.element_ty), mask=nm)


@triton.jit
def _sum_parts(part_ptr, b_ptr, y_ptr, N, SPLIT, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    """``y`` = the ``SPLIT`` partial sums [SPLIT, N] added up (+ bias), in ``y``'s dtype."""
    n = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    nm = n < N
    y = tl.zeros((BLOCK,), tl.float32)
    for k in range(0, SPLIT):
        y += tl.load(part_ptr + k * N + n, mask=nm, other=0.0)
    if HAS_BIAS:
        y += tl.load(b_ptr + n, mask=nm, other=0.0).to(tl.float32)
    tl.store(y_ptr + n, y.to(y_ptr.dtype.element_ty), mask=nm)


@triton.jit
def _uint4_dequant(
    q_ptr, s_ptr, m_ptr, w_ptr, N, K, s_qn, BLOCK_N: tl.constexpr, GROUPS: tl.constexpr
):  # fmt: skip
    """Program: the weight [BLOCK_N, 64 GROUPS] written in ``w_ptr``'s dtype (row-major)."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    g = tl.program_id(1) * GROUPS + tl.arange(0, GROUPS)
    G = K // 64
    ng = (n[:, None] < N) & (g[None, :] < G)
    u = tl.arange(0, 8)
    j = tl.arange(0, 8)
    w = tl.load(
        q_ptr + n[:, None, None] * s_qn + g[None, :, None] * 8 + u[None, None, :],
        mask=ng[:, :, None], other=0,
    )  # fmt: skip
    code = (w[:, :, None, :] >> (4 * j)[None, None, :, None]) & 15  # [n, g, j, u]
    s = tl.load(s_ptr + n[:, None] * G + g[None, :], mask=ng, other=0.0)
    m = tl.load(m_ptr + n[:, None] * G + g[None, :], mask=ng, other=0.0)
    wt = (
        code.to(tl.float32) * s.to(tl.float32)[:, :, None, None]
        + m.to(tl.float32)[:, :, None, None]
    )
    col = g[None, :, None, None] * 64 + j[None, None, :, None] * 8 + u[None, None, None, :]
    mask = ng[:, :, None, None] & (col < K)  # (col < K: the mask at full shape)
    tl.store(w_ptr + n[:, None, None, None] * K + col, wt.to(w_ptr.dtype.element_ty), mask=mask)


def launch(x: Any, packed: Any, scale: Any, shift: Any, bias: Any, out: Any) -> None:
    """``out`` [N] = dequantised(``packed`` [N, K/8] int32, ``scale``, ``shift`` [N, K/64])
    @ ``x`` [K] float32 (+ ``bias`` [N])."""
    import torch

    n, k = packed.shape[0], packed.shape[1] * 8

    def grid(meta: dict[str, int]) -> tuple[int, int]:
        return (triton.cdiv(n, meta["BLOCK_N"]), meta["SPLIT"])

    part = torch.empty(MAX_SPLIT, n, device=out.device, dtype=torch.float32)
    b = bias if bias is not None else scale
    _uint4_gemv[grid](
        x, packed, scale, shift, b, out, part, n, k, packed.stride(0), *MASKS,
        HAS_BIAS=bias is not None,
    )  # fmt: skip
    split = _uint4_gemv.best_config.kwargs["SPLIT"]  # the configuration this call ran
    if split > 1:
        _sum_parts[(triton.cdiv(n, 1024),)](
            part, b, out, n, split, HAS_BIAS=bias is not None, BLOCK=1024
        )


def dequantise(packed: Any, scale: Any, shift: Any, out: Any) -> None:
    """``out`` [N, K] = the weight ``packed`` [N, K/8], ``scale``, ``shift`` stand for."""
    n, k = packed.shape[0], packed.shape[1] * 8
    grid = (triton.cdiv(n, 32), triton.cdiv(k // 64, 4))
    _uint4_dequant[grid](packed, scale, shift, out, n, k, packed.stride(0), BLOCK_N=32, GROUPS=4)
