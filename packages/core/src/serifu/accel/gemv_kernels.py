"""Triton kernel of :mod:`serifu.accel.gemv`: ``y = act(W norm(x) (+ b))`` for one row ``x``,
each program a few output rows over the whole input width (no split-K, no reduction kernel).

``NORM`` folds the layer's input norm into the product (each program sums the input's
statistics in its own loop), ``ACT`` the MLP's activation into its output, so that the fused
layer computes what the norm, the linear layer and the activation compute in turn (in float32:
the normalised input is not rounded to the weights' dtype in between).

Imported only on CUDA; configurations autotuned per (out, in, norm, act) at the first call (the
decoder's warm-up steps, before its CUDA graph is recorded).
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton kernels' parameters are pointers and constexprs that Triton types itself)
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

CONFIGS = [
    triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w)
    for n, k, w in (
        (2, 1024, 4),
        (4, 512, 4),
        (4, 1024, 4),
        (4, 1024, 8),
        (8, 256, 4),
        (8, 512, 4),
        (8, 512, 8),
        (16, 256, 4),
        (16, 512, 8),
    )
]


@triton.autotune(configs=CONFIGS, key=["N", "K", "NORM", "ACT"])
@triton.jit
def _gemv(
    x_ptr, w_ptr, b_ptr, nw_ptr, sums_ptr, y_ptr, N, K, s_wn, eps,
    HAS_BIAS: tl.constexpr, NORM: tl.constexpr, ACT: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program: ``BLOCK_N`` output rows, the input in ``BLOCK_K`` steps, float32 sums.
    ``NORM``/``ACT``: serifu.accel.gemv's codes (0 none; norms 1 LayerNorm, 2 Llama's RMSNorm,
    3 Gemma's; activations 1 GELU, 2 GELU's tanh approximation).

    A norm costs no pass of its own: with ``g`` its weight, the loop sums ``w (g x)`` and the
    input's own sums; the end applies the statistics, ``y = rstd (sum(w g x) - mean W g) +
    W b`` with ``W g``, ``W b`` (``sums_ptr``, float32 [2, N]) summed once when the norm was
    folded. So every program starts reading weights at once, with one accumulator (a
    statistics pass first held the weights back: 0.92-0.96x; accumulating ``W g`` and ``W b``
    in the loop as well: 0.91x, session 26).
    """
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = n < N
    acc = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
    sx = tl.zeros((BLOCK_K,), tl.float32)  # the input's sums (read only with a norm)
    sxx = tl.zeros((BLOCK_K,), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        km = k < K
        x = tl.load(x_ptr + k, mask=km, other=0.0).to(tl.float32)
        w = tl.load(
            w_ptr + n[:, None] * s_wn + k[None, :], mask=nm[:, None] & km[None, :], other=0.0
        )
        if NORM != 0:
            sx += x
            sxx += x * x
            g = tl.load(nw_ptr + k, mask=km, other=0.0).to(tl.float32)
            if NORM == 3:  # Gemma scales by (1 + weight)
                g = tl.where(km, 1.0 + g, 0.0)
            x = x * g
        acc += w.to(tl.float32) * x[None, :]
    mean, rstd = norm_stats(sx, sxx, K, eps, NORM)
    dt = y_ptr.dtype.element_ty
    y = finish(tl.sum(acc, 1), n, nm, N, mean, rstd, sums_ptr, b_ptr, dt, HAS_BIAS, NORM, ACT)
    tl.store(y_ptr + n, y.to(dt), mask=nm)


@triton.jit
def norm_stats(sx, sxx, K, eps, NORM: tl.constexpr):
    """A folded norm's mean (LayerNorm; 0 otherwise) and 1 / std (1 without a norm) from the
    input's per-lane sums and sums of squares. Shared with :mod:`serifu.accel.uint4_gemv_kernels`."""
    mean = 0.0
    rstd = 1.0
    if NORM == 1:
        mean = tl.sum(sx, 0) / K
        rstd = tl.rsqrt(tl.maximum(tl.sum(sxx, 0) / K - mean * mean, 0.0) + eps)
    elif NORM != 0:
        rstd = tl.rsqrt(tl.sum(sxx, 0) / K + eps)
    return mean, rstd


@triton.jit
def finish(y, n, nm, N, mean, rstd, sums_ptr, b_ptr, dt: tl.constexpr, HAS_BIAS: tl.constexpr,
           NORM: tl.constexpr, ACT: tl.constexpr):  # fmt: skip
    """Rows ``n`` of a GEMV's float32 sums ``y`` finished: a folded norm's statistics applied
    (``y = rstd (sum(w g x) - mean W g) + W b``; RMS norms: ``rstd y``), the bias added, the
    activation applied to the product rounded to ``dt`` (as the separate activation kernel sees
    it). Shared with :mod:`serifu.accel.uint4_gemv_kernels`."""
    if NORM == 1:
        wg = tl.load(sums_ptr + n, mask=nm, other=0.0)
        y = rstd * (y - mean * wg) + tl.load(sums_ptr + N + n, mask=nm, other=0.0)
    elif NORM != 0:
        y = y * rstd
    if HAS_BIAS:
        y += tl.load(b_ptr + n, mask=nm, other=0.0).to(tl.float32)
    if ACT != 0:
        y = y.to(dt).to(tl.float32)
        if ACT == 1:
            y = 0.5 * y * (1.0 + tl.erf(y * 0.7071067811865476))
        else:  # 0.5 y (1 + tanh(u)) = y sigmoid(2u)
            y = y * tl.sigmoid(1.5957691216057308 * (y + 0.044715 * y * y * y))
    return y


def launch(
    x: Any,
    weight: Any,
    bias: Any,
    out: Any,
    norm: int = 0,
    norm_weight: Any = None,
    norm_sums: Any = None,
    eps: float = 0.0,
    act: int = 0,
) -> None:
    """``out`` [N] = act(``weight`` [N, K] (rows contiguous) @ norm(``x`` [K]) (+ ``bias``));
    a norm's ``norm_sums`` from :func:`serifu.accel.gemv.folded_sums`."""
    n, k = weight.shape

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    _gemv[grid](
        x, weight, bias if bias is not None else weight,
        norm_weight if norm_weight is not None else weight,
        norm_sums if norm_sums is not None else weight,
        out, n, k, weight.stride(0), eps,
        HAS_BIAS=bias is not None, NORM=norm, ACT=act,
    )  # fmt: skip
