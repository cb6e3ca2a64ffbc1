"""Triton kernel of :mod:`serifu.accel.gemv`: ``y = act(W norm(x) (+ b))`` for one row ``x``,
each program a few output rows over the whole input width (no split-K, no reduction kernel).

``NORM`` folds the layer's input norm into the product (each program sums the input's
statistics in its own loop), ``ACT`` the MLP's activation into its output, so that the fused
layer computes what the norm, the linear layer and the activation compute in turn (in float32:
the normalised input is not rounded to the weights' dtype in between).

``GLU`` (a gated MLP's gate and up stacked, :mod:`serifu.accel.gemv_fuse`): each program takes
rows ``j`` of both halves and writes ``act(gate_j) * up_j``, so the MLP's product of the two
needs no kernel of its own. ``PDL`` (programmatic dependent launch, sm90+): the program lets
the next kernel launch as soon as every program of this one has started, and reads its first
weights before it waits for the kernel before it (weights do not depend on it), so a GEMV's
start overlaps the previous kernel's last thread blocks.

Imported only on CUDA; each shape runs one configuration (:mod:`serifu.accel.gemv_tiles`: the
same sums in every process), or, with ``SERIFU_GEMV_TUNE=1``, the fastest of all of them, timed
at the first call (the decoder's warm-up steps, before its CUDA graph is recorded).
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton kernels' parameters are pointers and constexprs that Triton types itself)
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from serifu.accel.gemv_tiles import GEMV_TILES, gemv_tile, tuning

try:  # Triton >= 3.4: grid dependency control (programmatic dependent launch)
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

    HAS_PDL = True
except ImportError:  # pragma: no cover - older Triton: PDL stays off
    HAS_PDL = False

    @triton.jit
    def gdc_launch_dependents():
        pass

    @triton.jit
    def gdc_wait():
        pass


CONFIGS = [triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w) for n, k, w in GEMV_TILES]


def _pinned(configs: list, named: dict[str, Any], **kw: Any) -> list:
    """The shape's one configuration (:func:`serifu.accel.gemv_tiles.gemv_tile`), so the
    autotuner times nothing; all of them with ``SERIFU_GEMV_TUNE=1``."""
    if tuning():
        return configs
    n, k, w = gemv_tile(named["N"] // (2 if kw.get("GLU") else 1), named["K"])
    return [triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w)]


@triton.autotune(
    configs=CONFIGS,
    key=["N", "K", "NORM", "ACT", "GLU", "XGLU", "PDL"],
    prune_configs_by={"early_config_prune": _pinned},
)
@triton.jit
def _gemv(
    x_ptr, w_ptr, b_ptr, nw_ptr, sums_ptr, y_ptr, N, K, s_wn, eps,
    HAS_BIAS: tl.constexpr, NORM: tl.constexpr, ACT: tl.constexpr, GLU: tl.constexpr,
    XGLU: tl.constexpr, PDL: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Program: ``BLOCK_N`` output rows, the input in ``BLOCK_K`` steps, float32 sums.
    ``NORM``/``ACT``: serifu.accel.gemv's codes (0 none; norms 1 LayerNorm, 2 Llama's RMSNorm,
    3 Gemma's; activations 1 GELU, 2 GELU's tanh approximation, 3 SiLU). ``GLU`` (an
    activation code): the weight is a gate and an up half of ``N / 2`` rows each,
    the program sums rows ``j`` of both and writes ``act(gate) * up`` [half]. ``XGLU`` (an
    activation code): the input is a gated MLP's gate and up [2K], the product's input
    ``act(gate) * up`` [K], each input read computing it (a down projection that needs no
    product kernel before it).

    A norm costs no pass of its own: with ``g`` its weight, the loop sums ``w (g x)`` and the
    input's own sums; the end applies the statistics, ``y = rstd (sum(w g x) - mean W g) +
    W b`` with ``W g``, ``W b`` (``sums_ptr``, float32 [2, N]) summed once when the norm was
    folded. So every program starts reading weights at once, with one accumulator (a
    statistics pass first held the weights back: 0.92-0.96x; accumulating ``W g`` and ``W b``
    in the loop as well: 0.91x, session 26).
    """
    HALVES: tl.constexpr = 1 + (GLU != 0)
    half = N // HALVES  # output rows
    i = tl.arange(0, BLOCK_N * HALVES)
    j = tl.program_id(0) * BLOCK_N + i % BLOCK_N  # output row
    n = j + (i // BLOCK_N) * half  # weight row (the up half's after the gate's)
    nm = j < half
    acc = tl.zeros((BLOCK_N * HALVES, BLOCK_K), tl.float32)
    sx = tl.zeros((BLOCK_K,), tl.float32)  # the input's sums (read only with a norm)
    sxx = tl.zeros((BLOCK_K,), tl.float32)
    if PDL:  # the first weights read before waiting: they do not depend on the kernel before
        k = tl.arange(0, BLOCK_K)
        wm = nm[:, None] & (k < K)[None, :]
        w = tl.load(w_ptr + n[:, None] * s_wn + k[None, :], mask=wm, other=0.0)
        gdc_launch_dependents()  # the next kernel may start its own reads
        gdc_wait()  # this one's input is the previous kernel's output
        for k0 in range(0, K, BLOCK_K):  # w: this step's weights, loaded a step ahead
            kk = k0 + tl.arange(0, BLOCK_K)
            x, sx, sxx = _input(x_ptr, nw_ptr, kk, K, sx, sxx, NORM, XGLU)
            acc += w.to(tl.float32) * x[None, :]
            kn = k0 + BLOCK_K + tl.arange(0, BLOCK_K)
            wm = nm[:, None] & (kn < K)[None, :]
            w = tl.load(w_ptr + n[:, None] * s_wn + kn[None, :], mask=wm, other=0.0)
    else:
        for k0 in range(0, K, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            x, sx, sxx = _input(x_ptr, nw_ptr, k, K, sx, sxx, NORM, XGLU)
            wm = nm[:, None] & (k < K)[None, :]
            w = tl.load(w_ptr + n[:, None] * s_wn + k[None, :], mask=wm, other=0.0)
            acc += w.to(tl.float32) * x[None, :]
    mean, rstd = norm_stats(sx, sxx, K, eps, NORM)
    dt = y_ptr.dtype.element_ty
    y = finish(tl.sum(acc, 1), n, nm, N, mean, rstd, sums_ptr, b_ptr, dt, HAS_BIAS, NORM, ACT)
    if GLU != 0:  # [gate rows, up rows] -> act(gate) * up, each rounded as the model's are
        y2 = tl.reshape(y, (HALVES, BLOCK_N))
        first = (tl.arange(0, HALVES) == 0)[:, None]
        gate = activation(tl.sum(tl.where(first, y2, 0.0), 0).to(dt).to(tl.float32), GLU)
        up = tl.sum(tl.where(first, 0.0, y2), 0).to(dt).to(tl.float32)
        jo = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        tl.store(y_ptr + jo, (gate.to(dt).to(tl.float32) * up).to(dt), mask=jo < half)
    else:
        tl.store(y_ptr + n, y.to(dt), mask=nm)


@triton.jit
def _input(x_ptr, nw_ptr, k, K, sx, sxx, NORM: tl.constexpr, XGLU: tl.constexpr):
    """The inputs ``k`` in float32 (with ``XGLU``, ``act(gate_k) * up_k`` rounded as the model
    rounds each), times a folded norm's weight, and the raw inputs' running sums and sums of
    squares (the norm's statistics; untouched without a norm)."""
    km = k < K
    x = tl.load(x_ptr + k, mask=km, other=0.0)
    if XGLU != 0:
        dt = x.dtype
        up = tl.load(x_ptr + K + k, mask=km, other=0.0).to(tl.float32)
        x = (activation(x.to(tl.float32), XGLU).to(dt).to(tl.float32) * up).to(dt)
    x = x.to(tl.float32)
    if NORM != 0:
        sx += x
        sxx += x * x
        g = tl.load(nw_ptr + k, mask=km, other=0.0).to(tl.float32)
        if NORM == 3:  # Gemma scales by (1 + weight)
            g = tl.where(km, 1.0 + g, 0.0)
        x = x * g
    return x, sx, sxx


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
        y = activation(y.to(dt).to(tl.float32), ACT)
    return y


@triton.jit
def activation(y, ACT: tl.constexpr):
    """An activation code's function of float32 ``y``: 1 GELU (erf), 2 GELU's tanh
    approximation, 3 SiLU."""
    if ACT == 1:
        y = 0.5 * y * (1.0 + tl.erf(y * 0.7071067811865476))
    elif ACT == 2:  # 0.5 y (1 + tanh(u)) = y sigmoid(2u)
        y = y * tl.sigmoid(1.5957691216057308 * (y + 0.044715 * y * y * y))
    elif ACT == 3:
        y = y * tl.sigmoid(y)
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
    glu: int = 0,
    pdl: bool = False,
    in_glu: int = 0,
) -> None:
    """``out`` [N] = act(``weight`` [N, K] (rows contiguous) @ norm(``x`` [K]) (+ ``bias``));
    a norm's ``norm_sums`` from :func:`serifu.accel.gemv.folded_sums`; with ``glu`` (an
    activation code) ``out`` [N/2] = glu(gate) * up of the product's two halves; with
    ``in_glu`` (one) ``x`` [2K] is a gate and an up half and the product's input
    ``in_glu(gate) * up``; ``pdl``: launched as a programmatic dependent of the kernel before
    it (sm90+)."""
    n, k = weight.shape
    halves = 2 if glu else 1

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(n // halves, meta["BLOCK_N"]),)

    _gemv[grid](
        x, weight, bias if bias is not None else weight,
        norm_weight if norm_weight is not None else weight,
        norm_sums if norm_sums is not None else weight,
        out, n, k, weight.stride(0), eps,
        HAS_BIAS=bias is not None, NORM=norm, ACT=act, GLU=glu, XGLU=in_glu, PDL=pdl,
        **({"launch_pdl": True} if pdl else {}),  # a launch option of Triton >= 3.4 only
    )  # fmt: skip
