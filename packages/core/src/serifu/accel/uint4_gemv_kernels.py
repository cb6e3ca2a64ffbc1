"""Triton kernel of :mod:`serifu.accel.uint4_gemv`: ``y = W x (+ b)`` for one row ``x`` over
4-bit weights, each program a few output rows over the whole input (as
:mod:`serifu.accel.gemv_kernels`), the codes unpacked and scaled in registers.

Layout (:func:`serifu.accel.uint4_gemv.pack_uint4`): row ``n``'s byte ``32 g + t`` holds the
codes of inputs ``64 g + t`` (low nibble) and ``64 g + 32 + t`` (high nibble); ``scale[n, g]``
and ``shift[n, g]`` give the weight ``code * scale + shift``. A program's tile is
``BLOCK_N`` rows x ``GROUPS`` groups x 32 bytes, so each group's scale and shift are loaded
once and broadcast in registers.

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
    triton.Config({"BLOCK_N": n, "GROUPS": g, "PREFETCH": p}, num_warps=w)
    for n, g, w in (
        (2, 32, 4),
        (4, 16, 4),
        (8, 8, 4),
        (8, 16, 4),
        (8, 32, 8),
        (16, 8, 4),
        (16, 16, 8),
        (32, 8, 8),
    )
    for p in (False, True)
]


@triton.jit
def _load_tile(q_ptr, s_ptr, m_ptr, n, nm, g, gm, G, s_qn):
    """Codes [BLOCK_N, GROUPS, 32 bytes] of groups ``g`` (``gm``: the ones that exist), and
    their scales and shifts [BLOCK_N, GROUPS] in float32."""
    t = tl.arange(0, 32)
    q = tl.load(
        q_ptr + n[:, None, None] * s_qn + g[None, :, None] * 32 + t[None, None, :],
        mask=nm[:, None, None] & gm[None, :, None],
        other=0,
    )
    sm = nm[:, None] & gm[None, :]
    s = tl.load(s_ptr + n[:, None] * G + g[None, :], mask=sm, other=0.0).to(tl.float32)
    m = tl.load(m_ptr + n[:, None] * G + g[None, :], mask=sm, other=0.0).to(tl.float32)
    return q, s, m


@triton.jit
def _add_tile(acc, q, s, m, x_ptr, g, gm):
    """``acc`` + each code's weight times its input, for one tile."""
    t = tl.arange(0, 32)
    xl = tl.load(x_ptr + g[:, None] * 64 + t[None, :], mask=gm[:, None], other=0.0)
    xh = tl.load(x_ptr + g[:, None] * 64 + 32 + t[None, :], mask=gm[:, None], other=0.0)
    s3, m3 = s[:, :, None], m[:, :, None]
    lo = (q & 15).to(tl.float32) * s3 + m3
    hi = (q >> 4).to(tl.float32) * s3 + m3
    return acc + lo * xl.to(tl.float32)[None, :, :] + hi * xh.to(tl.float32)[None, :, :]


@triton.autotune(configs=CONFIGS, key=["N", "K"])
@triton.jit
def _uint4_gemv(
    x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, y_ptr, N, K, s_qn,
    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, GROUPS: tl.constexpr, PREFETCH: tl.constexpr,
):  # fmt: skip
    """Program: ``BLOCK_N`` output rows, the input ``GROUPS`` groups of 64 at a time. The row
    stride ``s_qn`` comes as its own argument (Triton sees it divisible by 16, so the codes
    load 16 bytes at a time; computed here as ``K // 2`` it would be known only to 8).
    ``PREFETCH``: the next tile's loads are issued before this tile's unpacking (held in
    registers), so a warp's loads overlap its own arithmetic; the autotuner keeps whichever
    of the two runs faster (docs/benchmarks.md, "Session 27")."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = n < N
    G = K // 64
    acc = tl.zeros((BLOCK_N, GROUPS, 32), tl.float32)
    if PREFETCH:
        g = tl.arange(0, GROUPS)
        q, s, m = _load_tile(q_ptr, s_ptr, m_ptr, n, nm, g, g < G, G, s_qn)
        for g0 in range(0, G, GROUPS):
            g = g0 + tl.arange(0, GROUPS)
            gn = g + GROUPS
            qn, sn, mn = _load_tile(q_ptr, s_ptr, m_ptr, n, nm, gn, gn < G, G, s_qn)
            acc = _add_tile(acc, q, s, m, x_ptr, g, g < G)
            q, s, m = qn, sn, mn
    else:
        for g0 in range(0, G, GROUPS):
            g = g0 + tl.arange(0, GROUPS)
            q, s, m = _load_tile(q_ptr, s_ptr, m_ptr, n, nm, g, g < G, G, s_qn)
            acc = _add_tile(acc, q, s, m, x_ptr, g, g < G)
    y = tl.sum(tl.sum(acc, 2), 1)
    if HAS_BIAS:
        y += tl.load(b_ptr + n, mask=nm, other=0.0).to(tl.float32)
    tl.store(y_ptr + n, y.to(y_ptr.dtype.element_ty), mask=nm)


@triton.jit
def _uint4_dequant(
    q_ptr, s_ptr, m_ptr, w_ptr, N, K, s_qn, BLOCK_N: tl.constexpr, GROUPS: tl.constexpr
):  # fmt: skip
    """Program: the weight [BLOCK_N, 64 GROUPS] written in ``w_ptr``'s dtype (row-major), for
    prompts: one pass over the codes instead of PyTorch's several over float32 copies."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    g = tl.program_id(1) * GROUPS + tl.arange(0, GROUPS)
    t = tl.arange(0, 32)
    G = K // 64
    ng = (n[:, None] < N) & (g[None, :] < G)
    mask = ng[:, :, None] & (t[None, None, :] < 32)  # the mask at the tile's full shape
    q = tl.load(q_ptr + n[:, None, None] * s_qn + g[None, :, None] * 32 + t[None, None, :],
                mask=mask, other=0)  # fmt: skip
    s = tl.load(s_ptr + n[:, None] * G + g[None, :], mask=ng, other=0.0).to(tl.float32)[:, :, None]
    m = tl.load(m_ptr + n[:, None] * G + g[None, :], mask=ng, other=0.0).to(tl.float32)[:, :, None]
    w = w_ptr + n[:, None, None] * K + g[None, :, None] * 64 + t[None, None, :]
    dtype = w_ptr.dtype.element_ty
    tl.store(w, ((q & 15).to(tl.float32) * s + m).to(dtype), mask=mask)
    tl.store(w + 32, ((q >> 4).to(tl.float32) * s + m).to(dtype), mask=mask)


def dequantise(packed: Any, scale: Any, shift: Any, out: Any) -> None:
    """``out`` [N, K] = the weight ``packed`` [N, K/2], ``scale``, ``shift`` stand for."""
    n, k = packed.shape[0], packed.shape[1] * 2
    grid = (triton.cdiv(n, 16), triton.cdiv(k // 64, 8))
    _uint4_dequant[grid](packed, scale, shift, out, n, k, packed.stride(0), BLOCK_N=16, GROUPS=8)


def launch(x: Any, packed: Any, scale: Any, shift: Any, bias: Any, out: Any) -> None:
    """``out`` [N] = dequantised(``packed`` [N, K/2], ``scale``, ``shift`` [N, K/64]) @ ``x``
    [K] (+ ``bias`` [N])."""
    n, k = packed.shape[0], packed.shape[1] * 2

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    _uint4_gemv[grid](
        x, packed, scale, shift, bias if bias is not None else scale, out, n, k, packed.stride(0),
        HAS_BIAS=bias is not None,
    )  # fmt: skip
