"""Triton kernels of :mod:`serifu.accel.uint4_gemv`: ``y = W x (+ b)`` for one row ``x`` over
4-bit weights, eight rows to a word, and the weight dequantised for prompts.

Layout (:func:`serifu.accel.uint4_gemv.pack_uint4`): ``packed [N/8, K]`` int32, nibble ``i``
of word ``(w, k)`` the code of row ``8w + i`` at input ``k``; ``scale``, ``shift [N/8, K/64,
8]`` float16, the weight ``code * scale + shift``.

Why this layout (session 28; the first kernel, session 26's, ran at ~53 µs per line-3.6b
layer on an H100 *and* an H200, as GemLite's does, so not bound by the bandwidth): with one row
per thread every code needs its own input (moved through shared memory behind barriers), and
each code took a quarter-rate int-to-float conversion. Here a thread loads 4 ``U`` contiguous
inputs' words of one word-row (``U`` 16-byte loads) and the same inputs of ``x``: each input
serves 8 rows in registers. A code becomes a float in one LOP3: the word shifted so that the
nibble sits at bit ``p`` (11, 15 or 19; three shifts a word), masked and OR-ed with 1.0's bits
is ``f = 1 + c 2^(p-23)``. So ``sum f x = X + 2^(p-23) sum c x`` (``X = sum x``): one FFMA a
code, and the scale and shift are applied once per row per thread's inputs,
``y += s 2^(23-p) (acc - X) + m X``. ~3.3 SASS instructions a code for sm90 against ~8 before;
``triton.compile`` shows no spills, no shared memory in the loop. Each program: ``BW`` word-rows
over the whole input, threads along the input; no split-K, so one kernel per layer.

Imported only on CUDA; each shape runs one configuration (:mod:`serifu.accel.gemv_tiles`), or,
with ``SERIFU_GEMV_TUNE=1``, the fastest of all, timed at the first call (the decoder's warm-up
steps, before its CUDA graph is recorded).
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton kernels' parameters are pointers and constexprs that Triton types itself)
from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from serifu.accel.gemv_kernels import finish, norm_stats
from serifu.accel.gemv_tiles import UINT4_TILES, tuning, uint4_tile

ONE = 0x3F800000  # 1.0's bits, an argument so that it stays in a register (LOP3's third input)

CONFIGS = [
    triton.Config({"BW": bw, "U": u, "NUM_WARPS": w, "PREFETCH": p}, num_warps=w)
    for p in (False, True)
    for bw, u, w in UINT4_TILES
    if not p or (bw == 1 and w >= 2)
]


def _pinned(configs: list, named: dict[str, Any], **kw: Any) -> list:
    """The shape's one configuration (:func:`serifu.accel.gemv_tiles.uint4_tile`), so the
    autotuner times nothing; all of them with ``SERIFU_GEMV_TUNE=1``."""
    if tuning():
        return configs
    bw, u, w, p = uint4_tile(named["N"], named["K"])
    return [triton.Config({"BW": bw, "U": u, "NUM_WARPS": w, "PREFETCH": p}, num_warps=w)]


@triton.jit
def _nibble(q, xv, one, LEFT: tl.constexpr, RIGHT: tl.constexpr, P: tl.constexpr):
    """``sum f x`` over a thread's inputs for one nibble (row) of ``q`` [T, U, 4]: the nibble
    moved to bit ``P`` (``<< LEFT >> RIGHT``), masked and OR-ed with 1.0's bits (one LOP3) is
    ``f = 1 + c 2^(P - 23)``; so the sum is ``X + 2^(P - 23) sum c x``. [T]"""
    f = ((((q << LEFT) >> RIGHT) & (15 << P)) | one).to(tl.float32, bitcast=True)
    return tl.sum(tl.reshape(f * xv, (f.shape[0], f.shape[1] * f.shape[2])), 1)  # one FFMA chain


@triton.jit
def _load_row(q_ptr, s_ptr, m_ptr, w, W, K, G, k, g):
    """Word-row ``w``'s words at inputs ``k`` [T, U, 4] and the scales and shifts [T, 8] of
    each thread's group ``g`` (nothing past the last word-row or input)."""
    kw = tl.where(w < W, K, 0)
    q = tl.load(q_ptr + w * K + k, mask=k < kw, other=0)
    sp = (w * G + g)[:, None] * 8 + tl.arange(0, 8)[None, :]
    gm = (g < tl.where(w < W, G, 0))[:, None]
    s = tl.load(s_ptr + sp, mask=gm, other=0.0)
    m = tl.load(m_ptr + sp, mask=gm, other=0.0)
    return q, s, m


@triton.jit
def _row_sums(q, s, m, xv, xs, one):
    """One word-row's part of the sums: [T, 8], row ``8w + i`` in column ``i``."""
    a0 = _nibble(q, xv, one, 11, 0, 11)  # nibbles 0-2 to bits 11, 15, 19
    a1 = _nibble(q, xv, one, 11, 0, 15)
    a2 = _nibble(q, xv, one, 11, 0, 19)
    a3 = _nibble(q, xv, one, 0, 1, 11)  # 3-5 to 11, 15, 19
    a4 = _nibble(q, xv, one, 0, 1, 15)
    a5 = _nibble(q, xv, one, 0, 1, 19)
    a6 = _nibble(q, xv, one, 0, 13, 11)  # 6-7 to 11, 15
    a7 = _nibble(q, xv, one, 0, 13, 15)
    i = tl.arange(0, 8)[None, :]
    acc = tl.where(i == 0, a0[:, None], tl.where(i == 1, a1[:, None], tl.where(i == 2, a2[:, None],
          tl.where(i == 3, a3[:, None], tl.where(i == 4, a4[:, None], tl.where(i == 5, a5[:, None],
          tl.where(i == 6, a6[:, None], a7[:, None])))))))  # fmt: skip
    fac = ((150 - (11 + 4 * (i % 3))) << 23).to(tl.float32, bitcast=True)  # 2^(23 - p)
    return s.to(tl.float32) * fac * (acc - xs) + m.to(tl.float32) * xs


@triton.jit
def _input(x_ptr, nw_ptr, k, K, T: tl.constexpr, C: tl.constexpr, NORM: tl.constexpr):
    """The inputs ``k`` [T, U, 4] in float32 (times the folded norm's weight), their sum per
    thread ``X`` [T, 1], and per thread the raw inputs' sum and sum of squares [T] (0 without
    a norm): the norm's statistics, summed in the same loop."""
    xf = tl.load(x_ptr + k, mask=k < K, other=0.0).to(tl.float32)
    sx = tl.zeros((T,), tl.float32)
    sxx = tl.zeros((T,), tl.float32)
    if NORM != 0:
        flat = tl.reshape(xf, (T, C))
        sx = tl.sum(flat, 1)
        sxx = tl.sum(flat * flat, 1)
        g = tl.load(nw_ptr + k, mask=k < K, other=0.0).to(tl.float32)
        if NORM == 3:  # Gemma scales by (1 + weight)
            g = tl.where(k < K, 1.0 + g, 0.0)
        xf = xf * g
    return xf, tl.sum(tl.reshape(xf, (T, C)), 1)[:, None], sx, sxx


@triton.jit
def _store_rows(
    y_ptr, b_ptr, sums_ptr, y, w, N, mean, rstd,
    HAS_BIAS: tl.constexpr, NORM: tl.constexpr, ACT: tl.constexpr,
):  # fmt: skip
    """Rows ``8w ...`` of ``y`` = the threads' sums [T, 8] added up, finished as
    :mod:`serifu.accel.gemv_kernels` finishes a row (norm statistics, bias, activation)."""
    n = w * 8 + tl.arange(0, 8)
    nm = n < N
    dt = y_ptr.dtype.element_ty
    out = finish(tl.sum(y, 0), n, nm, N, mean, rstd, sums_ptr, b_ptr, dt, HAS_BIAS, NORM, ACT)
    tl.store(y_ptr + n, out.to(dt), mask=nm)


@triton.autotune(
    configs=CONFIGS, key=["N", "K", "NORM", "ACT"], prune_configs_by={"early_config_prune": _pinned}
)
@triton.jit
def _uint4_gemv(
    x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, nw_ptr, sums_ptr, y_ptr, N, K, one, eps,
    HAS_BIAS: tl.constexpr, NORM: tl.constexpr, ACT: tl.constexpr,
    BW: tl.constexpr, U: tl.constexpr, NUM_WARPS: tl.constexpr, PREFETCH: tl.constexpr,
):  # fmt: skip
    """Program: word-rows ``BW pid`` and ``BW pid + 1`` (``BW`` 1 or 2; 8 output rows each)
    over the whole input; thread ``t`` takes inputs ``k0 + 4 U t ...`` (``U`` 16-byte loads,
    within one group). ``PREFETCH`` (``BW`` 1): the next iteration's words, scales and shifts
    are loaded before this one's sums (``serifu.accel.gemv_tiles.uint4_tile`` says where).
    ``NORM``/``ACT``: :mod:`serifu.accel.gemv`'s codes, folded in as
    :mod:`serifu.accel.gemv_kernels` folds them (the loop sums ``c (g x)`` and the input's
    statistics; ``W g``, ``W b`` come in ``sums_ptr`` [2, N])."""
    T: tl.constexpr = 32 * NUM_WARPS
    C: tl.constexpr = U * 4
    G = K // 64
    W = (N + 7) // 8
    t = tl.arange(0, T)
    kt = t[:, None, None] * C + tl.arange(0, U)[None, :, None] * 4 + tl.arange(0, 4)[None, None, :]
    w0 = tl.program_id(0) * BW
    y0 = tl.zeros((T, 8), tl.float32)
    y1 = tl.zeros((T, 8), tl.float32)
    sx = tl.zeros((T,), tl.float32)
    sxx = tl.zeros((T,), tl.float32)
    if PREFETCH:
        q, s, m = _load_row(q_ptr, s_ptr, m_ptr, w0, W, K, G, kt, (t * C) // 64)
        for k0 in range(0, K, T * C):
            k = k0 + T * C + kt
            qn, sn, mn = _load_row(q_ptr, s_ptr, m_ptr, w0, W, K, G, k, (k0 + T * C + t * C) // 64)
            xf, xs, px, pxx = _input(x_ptr, nw_ptr, k0 + kt, K, T, C, NORM)
            if NORM != 0:
                sx += px
                sxx += pxx
            y0 += _row_sums(q, s, m, xf, xs, one)
            q, s, m = qn, sn, mn
    else:
        for k0 in range(0, K, T * C):
            k = k0 + kt
            xf, xs, px, pxx = _input(x_ptr, nw_ptr, k, K, T, C, NORM)  # [T, U, 4], [T, 1]
            if NORM != 0:
                sx += px
                sxx += pxx
            g = (k0 + t * C) // 64
            q, s, m = _load_row(q_ptr, s_ptr, m_ptr, w0, W, K, G, k, g)
            y0 += _row_sums(q, s, m, xf, xs, one)
            if BW > 1:
                q, s, m = _load_row(q_ptr, s_ptr, m_ptr, w0 + 1, W, K, G, k, g)
                y1 += _row_sums(q, s, m, xf, xs, one)
    mean, rstd = norm_stats(sx, sxx, K, eps, NORM)
    _store_rows(y_ptr, b_ptr, sums_ptr, y0, w0, N, mean, rstd, HAS_BIAS, NORM, ACT)
    if BW > 1:
        _store_rows(y_ptr, b_ptr, sums_ptr, y1, w0 + 1, N, mean, rstd, HAS_BIAS, NORM, ACT)


@triton.jit
def _uint4_dequant(
    q_ptr, s_ptr, m_ptr, w_ptr, N, K, BW: tl.constexpr, GROUPS: tl.constexpr
):  # fmt: skip
    """Program: rows ``8w + i`` of word-rows ``w`` [BW] times inputs [64 GROUPS] of the weight,
    written in ``w_ptr``'s dtype (row-major), for prompts: one pass over the codes."""
    w = tl.program_id(0) * BW + tl.arange(0, BW)
    g = tl.program_id(1) * GROUPS + tl.arange(0, GROUPS)
    t = tl.arange(0, 64)
    G = K // 64
    W = (N + 7) // 8
    k = g[None, :, None] * 64 + t[None, None, :]  # [1, GROUPS, 64]
    ok = (w[:, None] < W) & (g[None, :] < G)  # [BW, GROUPS]
    q = tl.load(q_ptr + w[:, None, None] * K + k, mask=ok[:, :, None], other=0)
    dtype = w_ptr.dtype.element_ty
    for i in tl.static_range(8):
        sp = (w[:, None] * G + g[None, :]) * 8 + i
        s = tl.load(s_ptr + sp, mask=ok, other=0.0).to(tl.float32)[:, :, None]
        m = tl.load(m_ptr + sp, mask=ok, other=0.0).to(tl.float32)[:, :, None]
        n = w * 8 + i
        code = ((q >> (4 * i)) & 15).to(tl.float32)
        rows = (ok & (n[:, None] < N))[:, :, None]
        tl.store(w_ptr + n[:, None, None] * K + k, (code * s + m).to(dtype), mask=rows)


def dequantise(packed: Any, scale: Any, shift: Any, n: int, out: Any) -> None:
    """``out`` [n, K] = the weight ``packed`` [n/8, K], ``scale``, ``shift`` stand for."""
    k = packed.shape[1]
    grid = (triton.cdiv(packed.shape[0], 4), triton.cdiv(k // 64, 4))
    _uint4_dequant[grid](packed, scale, shift, out, n, k, BW=4, GROUPS=4)


def launch(
    x: Any, packed: Any, scale: Any, shift: Any, bias: Any, n: int, out: Any, folded: tuple = ()
) -> None:
    """``out`` [n] = act(dequantised(``packed`` [n/8, K], ``scale``, ``shift``) @ norm(``x``
    [K]) (+ ``bias`` [n])); ``folded``: ``(norm, norm_weight, norm_sums, eps, act)`` as
    :func:`serifu.accel.gemv.gemv` takes them (empty: nothing folded)."""
    norm, norm_weight, norm_sums, eps, act = folded or (0, None, None, 0.0, 0)
    words, k = packed.shape

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(words, meta["BW"]),)

    _uint4_gemv[grid](
        x, packed, scale, shift, bias if bias is not None else scale,
        norm_weight if norm_weight is not None else scale,
        norm_sums if norm_sums is not None else scale,
        out, n, k, ONE, eps, HAS_BIAS=bias is not None, NORM=norm, ACT=act,
    )  # fmt: skip
