"""Triton kernel of :mod:`serifu.accel.gemv`: ``y = W x (+ b)`` for one row ``x``, each
program a few output rows over the whole input width (no split-K, no reduction kernel).

Imported only on CUDA; configurations autotuned per (out, in) shape at the first call (the
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


@triton.autotune(configs=CONFIGS, key=["N", "K"])
@triton.jit
def _gemv(
    x_ptr, w_ptr, b_ptr, y_ptr, N, K, s_wn,
    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program: ``BLOCK_N`` output rows, the input in ``BLOCK_K`` steps, float32 sums."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = n < N
    acc = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        km = k < K
        x = tl.load(x_ptr + k, mask=km, other=0.0)
        w = tl.load(
            w_ptr + n[:, None] * s_wn + k[None, :], mask=nm[:, None] & km[None, :], other=0.0
        )
        acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
    y = tl.sum(acc, 1)
    if HAS_BIAS:
        y += tl.load(b_ptr + n, mask=nm, other=0.0).to(tl.float32)
    tl.store(y_ptr + n, y.to(y_ptr.dtype.element_ty), mask=nm)


def launch(x: Any, weight: Any, bias: Any, out: Any) -> None:
    """``out`` [N] = ``weight`` [N, K] (rows contiguous) @ ``x`` [K] (+ ``bias`` [N])."""
    n, k = weight.shape

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    _gemv[grid](
        x, weight, bias if bias is not None else weight, out, n, k, weight.stride(0),
        HAS_BIAS=bias is not None,
    )  # fmt: skip
