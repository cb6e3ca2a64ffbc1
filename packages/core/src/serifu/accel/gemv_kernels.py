"""Triton kernel of :mod:`serifu.accel.gemv`: ``y = act(W norm(x) (+ b))`` for one row ``x``,
each program a few output rows over the whole input width (no split-K, no reduction kernel).

``NORM`` folds the layer's input norm into the product (each program normalises ``x`` itself:
one pass over its statistics, ``x`` is a few KiB and in cache), ``ACT`` the MLP's activation
into its output, rounded where the separate PyTorch kernels round, so that the fused layer
computes what the norm, the linear layer and the activation compute in turn.

Imported only on CUDA; configurations autotuned per (out, in, norm, act) at the first call (the
decoder's warm-up steps, before its CUDA graph is recorded).
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton kernels' parameters are pointers and constexprs that Triton types itself)
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from serifu.accel.gemv import MAX_NORM_WIDTH

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


@triton.jit
def _norm_stats(x_ptr, K, eps, NORM: tl.constexpr, KP: tl.constexpr):
    """Mean (0 for RMS norms) and 1/std of the input row, float32."""
    k = tl.arange(0, KP)
    x = tl.load(x_ptr + k, mask=k < K, other=0.0).to(tl.float32)
    if NORM == 1:
        mean = tl.sum(x, 0) / K
        d = tl.where(k < K, x - mean, 0.0)
    else:
        mean = 0.0
        d = x
    return mean, tl.rsqrt(tl.sum(d * d, 0) / K + eps)


@triton.autotune(configs=CONFIGS, key=["N", "K", "NORM", "ACT"])
@triton.jit
def _gemv(
    x_ptr, w_ptr, b_ptr, nw_ptr, nb_ptr, y_ptr, N, K, s_wn, eps,
    HAS_BIAS: tl.constexpr, NORM: tl.constexpr, HAS_NORM_BIAS: tl.constexpr, ACT: tl.constexpr,
    KP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program: ``BLOCK_N`` output rows, the input in ``BLOCK_K`` steps, float32 sums.
    ``NORM``/``ACT``: serifu.accel.gemv's codes (0 none; norms 1 LayerNorm, 2 Llama's RMSNorm,
    3 Gemma's; activations 1 GELU, 2 GELU's tanh approximation)."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = n < N
    dt = y_ptr.dtype.element_ty
    if NORM != 0:
        mean, rstd = _norm_stats(x_ptr, K, eps, NORM, KP)
    acc = tl.zeros((BLOCK_N, BLOCK_K), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        km = k < K
        x = tl.load(x_ptr + k, mask=km, other=0.0).to(tl.float32)
        if NORM != 0:
            g = tl.load(nw_ptr + k, mask=km, other=0.0).to(tl.float32)
            if NORM == 1:  # F.layer_norm: float32 inside, rounded once
                x = (x - mean) * rstd * g
                if HAS_NORM_BIAS:
                    x += tl.load(nb_ptr + k, mask=km, other=0.0).to(tl.float32)
            elif NORM == 2:  # Llama: weight * (x * rstd).to(dtype)
                x = (x * rstd).to(dt).to(tl.float32) * g
            else:  # Gemma: (x * rstd * (1 + weight)).to(dtype)
                x = x * rstd * (1.0 + g)
            x = x.to(dt).to(tl.float32)
        w = tl.load(
            w_ptr + n[:, None] * s_wn + k[None, :], mask=nm[:, None] & km[None, :], other=0.0
        )
        acc += w.to(tl.float32) * x[None, :]
    y = tl.sum(acc, 1)
    if HAS_BIAS:
        y += tl.load(b_ptr + n, mask=nm, other=0.0).to(tl.float32)
    if ACT != 0:  # on the rounded product, as the separate activation kernel sees it
        y = y.to(dt).to(tl.float32)
        if ACT == 1:
            y = 0.5 * y * (1.0 + tl.erf(y * 0.7071067811865476))
        else:  # 0.5 y (1 + tanh(u)) = y sigmoid(2u)
            y = y * tl.sigmoid(1.5957691216057308 * (y + 0.044715 * y * y * y))
    tl.store(y_ptr + n, y.to(dt), mask=nm)


def launch(
    x: Any,
    weight: Any,
    bias: Any,
    out: Any,
    norm: int = 0,
    norm_weight: Any = None,
    norm_bias: Any = None,
    eps: float = 0.0,
    act: int = 0,
) -> None:
    """``out`` [N] = act(``weight`` [N, K] (rows contiguous) @ norm(``x`` [K]) (+ ``bias``))."""
    n, k = weight.shape
    if norm and k > MAX_NORM_WIDTH:
        raise ValueError(f"a folded norm needs an input of at most {MAX_NORM_WIDTH}, not {k}")

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    _gemv[grid](
        x, weight, bias if bias is not None else weight,
        norm_weight if norm_weight is not None else weight,
        norm_bias if norm_bias is not None else weight,
        out, n, k, weight.stride(0), eps,
        HAS_BIAS=bias is not None, NORM=norm, HAS_NORM_BIAS=norm_bias is not None, ACT=act,
        KP=triton.next_power_of_2(k) if norm else 16,
    )  # fmt: skip
