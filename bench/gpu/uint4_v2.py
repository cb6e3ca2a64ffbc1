"""Bench-only: session 27's second uint4 GEMV (v2), kept to settle why it lost.

v2 (commit e791844, reverted in the product): int32 words whose nibble ``j`` of word ``8g + u``
holds input ``64g + 8j + u``; each code becomes a float by one mask-and-OR into 1.0's mantissa
(no int-to-float conversion: ~8 SASS instructions a byte of codes against v1's ~16); one FMA
per code for the weight, one for the product; optional split-K with a second kernel summing
the parts. In the product's op it took ``x`` in float32, cast inside the op: an extra kernel
per call, and with split-K a third. Measured per layer on an H100 it ran slower than v1 and
GemLite (docs/benchmarks.md, "Session 27"); the small layers lost ~3 µs, about two launches.
:func:`candidates` times the kernel alone, so one device call can tell the kernel from the
launches around it (``bench/gpu/gemv_shapes.py --kernels uint4s,uint4s-v2,uint4s-v2-raw,
uint4s-v2-bf16x,uint4s-v2-bf16x-split,gemlite``):

- ``uint4s-v2``: as the product ran it (x cast to float32 inside, every configuration);
- ``uint4s-v2-raw``: x already float32, no split-K (one kernel);
- ``uint4s-v2-bf16x``: x read in bf16 by the kernel itself, no split-K (one kernel);
- ``uint4s-v2-bf16x-split``: the same with split-K allowed (a second kernel when chosen);
- ``…-prefetch`` of the last two: each tile's loads issued one tile ahead (registers).
"""

# mypy: disable-error-code="no-untyped-def"
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl


def pack_uint4(
    codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``uint4_quantize``'s codes [N, K] (0-15), scales and zeros [N, K/64] as the kernel's
    ``(packed [N, K/8] int32, scale, shift [N, K/64] float16)``: nibble ``j`` (bits ``4j``)
    of a row's word ``8 g + u`` holds the code of input ``64 g + 8 j + u``; the weight is
    ``code * scale + shift`` (``shift = -zero * scale``; float16 keeps the grid 4x closer than
    bf16, whose 8-bit mantissa moves a shift by up to 0.5 % of the layer's largest weight)."""
    n, k = codes.shape
    nibbles = codes.to(torch.int32).reshape(n, k // 64, 8, 8)  # [n, g, j, u]
    words = torch.zeros(n, k // 64, 8, dtype=torch.int32, device=codes.device)
    for j in range(8):  # int32 wraps: nibble 7 lands in the sign bit, as the kernel reads it
        words |= nibbles[:, :, j] << (4 * j)
    scale = scales.float()
    shift = -zeros.float() * scale
    return words.reshape(n, k // 8).contiguous(), scale.to(torch.float16), shift.to(torch.float16)


def unpack_uint4(packed: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The float32 weight [N, K] the packed codes stand for."""
    n, words = packed.shape
    w = packed.reshape(n, words // 8, 1, 8)  # [n, g, 1, u]
    shifts = 4 * torch.arange(8, device=packed.device, dtype=torch.int32).reshape(1, 1, 8, 1)
    codes = ((w >> shifts) & 15).float()  # [n, g, j, u]: input 64 g + 8 j + u
    weight = codes * scale.float()[..., None, None] + shift.float()[..., None, None]
    return weight.reshape(n, words * 8)


CONFIGS = [
    triton.Config({"BLOCK_N": n, "GROUPS": g, "SPLIT": k}, num_warps=w)
    for n, g, k, w in (
        (2, 16, 1, 2),
        (2, 32, 1, 4),
        (4, 16, 1, 4),
        (4, 32, 1, 8),
        (8, 16, 1, 4),
        (16, 4, 1, 2),
        (32, 4, 1, 4),
        (64, 4, 1, 4),
        (32, 1, 1, 2),
        (64, 1, 1, 4),
        (4, 8, 4, 2),
        (4, 16, 2, 4),
        (8, 8, 4, 4),
        (2, 16, 4, 2),
        (16, 2, 4, 2),
        (16, 4, 4, 2),
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


@triton.jit
def _load_tile(q_ptr, s_ptr, m_ptr, n, nm, g, gm, G, s_qn, EVEN: tl.constexpr):
    """Words [GROUPS, BLOCK_N, 8], scales and shifts [GROUPS, BLOCK_N] (float32) of groups
    ``g``; ``gm`` masks groups past the program's part (read only when not ``EVEN``)."""
    u = tl.arange(0, 8)
    qp = q_ptr + g[:, None, None] * 8 + n[None, :, None] * s_qn + u[None, None, :]
    sp = g[:, None] + n[None, :] * G
    if EVEN:
        w = tl.load(qp)
        s = tl.load(s_ptr + sp).to(tl.float32)
        m = tl.load(m_ptr + sp).to(tl.float32)
    else:
        ok = gm[:, None] & nm[None, :]
        w = tl.load(qp, mask=ok[:, :, None], other=0)
        s = tl.load(s_ptr + sp, mask=ok, other=0.0).to(tl.float32)
        m = tl.load(m_ptr + sp, mask=ok, other=0.0).to(tl.float32)
    return w, s, m


@triton.jit
def _add_nibble(acc, src, mask, one, scale, shift, xp):
    """``acc`` + the weights of the nibble ``mask`` selects in ``src`` times their inputs
    ``xp``: the nibble OR-ed with 1.0's bits is ``1 + code * 2**(p - 23)``, one LOP3."""
    f = ((src & mask) | one).to(tl.float32, bitcast=True)
    return acc + (f * scale + shift) * tl.load(xp).to(tl.float32)[:, None, :]


@triton.jit
def _add_tile(acc, w, s, m, x_ptr, g, k8, k12, k16, one):
    """``acc`` + each code's weight times its input, for one tile (see the module's notes)."""
    u = tl.arange(0, 8)
    s8, s12, s16 = (s * 32768.0)[:, :, None], (s * 2048.0)[:, :, None], (s * 128.0)[:, :, None]
    m8, m12, m16 = m[:, :, None] - s8, m[:, :, None] - s12, m[:, :, None] - s16
    xp = x_ptr + g[:, None] * 64 + u[None, :]
    a, c = w << 12, w >> 12  # nibbles 0-1 at bits 12, 16; nibbles 5-7 at 8, 12, 16
    acc = _add_nibble(acc, a, k12, one, s12, m12, xp)
    acc = _add_nibble(acc, a, k16, one, s16, m16, xp + 8)
    acc = _add_nibble(acc, w, k8, one, s8, m8, xp + 16)
    acc = _add_nibble(acc, w, k12, one, s12, m12, xp + 24)
    acc = _add_nibble(acc, w, k16, one, s16, m16, xp + 32)
    acc = _add_nibble(acc, c, k8, one, s8, m8, xp + 40)
    acc = _add_nibble(acc, c, k12, one, s12, m12, xp + 48)
    acc = _add_nibble(acc, c, k16, one, s16, m16, xp + 56)
    return acc


@triton.jit
def _uint4_gemv_body(
    x_ptr, q_ptr, s_ptr, m_ptr, b_ptr, y_ptr, part_ptr, N, K, s_qn, k8, k12, k16, one,
    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, GROUPS: tl.constexpr, SPLIT: tl.constexpr,
    EVEN_N: tl.constexpr, PREFETCH: tl.constexpr = False,
):  # fmt: skip
    """Program: ``BLOCK_N`` output rows over the ``program_id(1)``-th of ``SPLIT`` parts of
    the input, ``GROUPS`` groups of 64 at a time, as a [GROUPS, BLOCK_N, 8 words] tile (so a
    thread's ``x`` serves several rows); ``x`` bf16 or float32 (summed in float32). With
    ``SPLIT`` > 1 the row sums go to ``part_ptr`` [SPLIT, N] (:func:`_sum_parts` adds them
    up). ``PREFETCH``: the next tile's loads are issued before this tile's arithmetic (held in
    registers), so a warp's loads overlap its own unpacking instead of waiting on it."""
    n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = n < N
    G = K // 64
    per = G // SPLIT
    start = tl.program_id(1) * per
    end = start + per
    acc = tl.zeros((GROUPS, BLOCK_N, 8), tl.float32)
    if PREFETCH:
        g = start + tl.arange(0, GROUPS)
        w, s, m = _load_tile(q_ptr, s_ptr, m_ptr, n, nm, g, g < end, G, s_qn, False)
        for g0 in range(start, end, GROUPS):
            gn = g0 + GROUPS + tl.arange(0, GROUPS)
            wn, sn, mn = _load_tile(q_ptr, s_ptr, m_ptr, n, nm, gn, gn < end, G, s_qn, False)
            acc = _add_tile(acc, w, s, m, x_ptr, g0 + tl.arange(0, GROUPS), k8, k12, k16, one)
            w, s, m = wn, sn, mn
    else:
        for g0 in range(start, end, GROUPS):
            g = g0 + tl.arange(0, GROUPS)
            w, s, m = _load_tile(q_ptr, s_ptr, m_ptr, n, nm, g, g < end, G, s_qn, EVEN_N)
            acc = _add_tile(acc, w, s, m, x_ptr, g, k8, k12, k16, one)
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


_EVEN = {"EVEN_N": lambda a: a["N"] % a["BLOCK_N"] == 0}
_PRUNE = {"early_config_prune": _groups_divide}
TUNED = {  # every configuration / one kernel only (no split-K)
    "all": triton.autotune(CONFIGS, key=["N", "K"], prune_configs_by=_PRUNE)(
        triton.heuristics(_EVEN)(_uint4_gemv_body)
    ),
    "nosplit": triton.autotune(
        [c for c in CONFIGS if c.kwargs["SPLIT"] == 1], key=["N", "K"], prune_configs_by=_PRUNE
    )(triton.heuristics(_EVEN)(_uint4_gemv_body)),
}


def launch(
    x: Any, packed: Any, scale: Any, shift: Any, out: Any, tuned: str, prefetch: bool = False
) -> None:
    """``out`` [N] = the dequantised weight @ ``x`` [K] (bf16 or float32), no bias."""
    n, k = packed.shape[0], packed.shape[1] * 8
    kernel = TUNED[tuned]

    def grid(meta: dict[str, int]) -> tuple[int, int]:
        return (triton.cdiv(n, meta["BLOCK_N"]), meta["SPLIT"])

    part = torch.empty(MAX_SPLIT, n, device=out.device, dtype=torch.float32)
    kernel[grid](x, packed, scale, shift, scale, out, part, n, k, packed.stride(0), *MASKS,
                 HAS_BIAS=False, PREFETCH=prefetch)  # fmt: skip
    split = kernel.best_config.kwargs["SPLIT"]
    if split > 1:
        _sum_parts[(triton.cdiv(n, 1024),)](part, scale, out, n, split, HAS_BIAS=False, BLOCK=1024)


def candidates(layer: torch.nn.Linear, x: torch.Tensor, kernels: list[str]) -> dict[str, Any]:
    """name -> (call, bytes of weights read) for the asked ``uint4s-v2*`` kernels."""
    from serifu.inference.quantize import uint4_quantize

    packed, scale, shift = pack_uint4(*uint4_quantize(layer.weight, 64))
    nbytes = packed.numel() * 4 + 2 * scale.numel() * 2
    out = torch.empty(layer.weight.shape[0], device=x.device, dtype=x.dtype)
    xf = x.reshape(-1).float().contiguous()
    xb = x.reshape(-1).contiguous()

    def run(x_in: Any, tuned: str, cast: bool = False, prefetch: bool = False) -> torch.Tensor:
        launch(x_in.float() if cast else x_in, packed, scale, shift, out, tuned, prefetch)
        return out.view(1, -1)

    ways = {
        "uint4s-v2": lambda: run(xb, "all", cast=True),
        "uint4s-v2-raw": lambda: run(xf, "nosplit"),
        "uint4s-v2-bf16x": lambda: run(xb, "nosplit"),
        "uint4s-v2-bf16x-split": lambda: run(xb, "all"),
        "uint4s-v2-bf16x-prefetch": lambda: run(xb, "nosplit", prefetch=True),
        "uint4s-v2-bf16x-split-prefetch": lambda: run(xb, "all", prefetch=True),
    }
    return {k: (ways[k], nbytes) for k in kernels if k in ways}
