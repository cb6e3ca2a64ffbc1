"""Triton kernels of :mod:`serifu.accel.split_kv`: one query per (row, head), its keys split
over several programs (flash-decoding), then the partial softmaxes combined.

Imported only on CUDA (triton is there wherever inductor runs); the algorithm's PyTorch twin,
:func:`serifu.accel.split_kv.split_attention_reference`, is what the CPU runs and the tests check.
"""

# mypy: disable-error-code="no-untyped-def"
# (Triton kernels' parameters are pointers and constexprs that Triton types itself)
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from serifu.accel.gemv_kernels import gdc_launch_dependents
from serifu.accel.split_kv import padded_width, piece_width, warps_for


@triton.jit
def _split_kv_partial(
    q_ptr, k_ptr, v_ptr, m_ptr, acc_ptr, ml_ptr, count_ptr, o_ptr, kn_ptr, vn_ptr, len_ptr,
    cos_ptr, sin_ptr,
    s_qb, s_qh, s_kb, s_kh, s_kn, s_vb, s_vh, s_vn, s_mb, s_mh, s_ob, s_oh,
    s_nkb, s_nkh, s_nvb, s_nvh, s_cb, keys, scale,
    HEADS: tl.constexpr, GROUPS: tl.constexpr, DIM: tl.constexpr, PIECE: tl.constexpr,
    PIECES: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr, SPLITS: tl.constexpr,
    BLOCK_S: tl.constexpr, MASK: tl.constexpr, FUSED: tl.constexpr, WRITE: tl.constexpr,
    ROPE: tl.constexpr,
):  # fmt: skip
    """Program (row·head, split): the running max, sum and weighted values over its chunk,
    stored for the combine.

    A head's ``DIM`` values are read as ``PIECES`` (a power of two) runs of ``PIECE``
    contiguous values (``DIM``'s largest power-of-two divisor, e.g. 3 x 32 for 96), so that
    loads stay vectorised where ``DIM`` is not a power of two.

    ``FUSED``: then a ticket from the row·head's counter; the program that draws the last
    ticket combines the splits itself (:func:`_combine`, bypassing L1, which other SMs' stores
    do not reach) and sets the counter back to 0 for the next launch: one launch a layer, no
    :func:`_split_kv_combine` after it.

    ``WRITE`` (:mod:`serifu.accel.kv_write`): the new key and value (``kn_ptr``/``vn_ptr``)
    are not in the cache yet; their position is the length at ``len_ptr`` less one (the
    update advanced it). The loop masks that position's stale slot; after it, the program of
    the chunk holding the position scores the new key from registers (one more step of the
    online softmax), and for the first head of the key's group stores key and value. Before
    the loop, that store waited on three loads and held up the loop's own (gemma-3-270m's
    kernel +1.9 us a layer on an H100, session 37).

    ``ROPE`` (with ``WRITE``; :mod:`serifu.accel.rope_fold`): the query and the new key arrive
    unrotated; each is rotated here by the step's ``cos``/``sin`` [B, 1, DIM] as Llama's
    ``apply_rotary_pos_emb`` does (``x * cos + rotate_half(x) * sin``, computed in float32
    and rounded once to the input's dtype, as inductor's rotary kernel rounds it), so the
    stored key is the rotated one."""
    if FUSED:
        gdc_launch_dependents()  # as _split_kv_combine does
    bh = tl.program_id(0)
    split = tl.program_id(1)
    b = bh // HEADS
    h = bh % HEADS
    kv = h // GROUPS
    c = tl.arange(0, PIECES)
    d = tl.arange(0, PIECE)
    cm = c < DIM // PIECE
    qd = c[:, None] * PIECE + d[None, :]  # [PIECES, PIECE]: the head's dims
    q = tl.load(q_ptr + b * s_qb + h * s_qh + qd, mask=cm[:, None], other=0.0)
    if ROPE:  # the step's cos and sin, once for the query and the new key
        cs = tl.load(cos_ptr + b * s_cb + qd, mask=cm[:, None], other=0.0).to(tl.float32)
        sn = tl.load(sin_ptr + b * s_cb + qd, mask=cm[:, None], other=0.0).to(tl.float32)
        q = _rotated(q, q_ptr + b * s_qb + h * s_qh, cs, sn, qd, cm, DIM)
    q = q.to(tl.float32) * scale
    if WRITE:  # loaded now, used after the loop: nothing here holds up the loop's loads
        pos = tl.load(len_ptr).to(tl.int32) - 1  # (the update advanced the length)
        kn = tl.load(kn_ptr + b * s_nkb + kv * s_nkh + qd, mask=cm[:, None], other=0.0)
        vn = tl.load(vn_ptr + b * s_nvb + kv * s_nvh + qd, mask=cm[:, None], other=0.0)
        if ROPE:
            kn = _rotated(kn, kn_ptr + b * s_nkb + kv * s_nkh, cs, sn, qd, cm, DIM)
    m_i = tl.full((), float("-inf"), tl.float32)
    l_i = tl.zeros((), tl.float32)
    acc = tl.zeros((PIECES, PIECE), tl.float32)
    for start in range(split * CHUNK, split * CHUNK + CHUNK, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        inside = n < keys
        # keys, values and mask loaded independently of each other (one memory latency, not
        # a chain): masked keys are read too, and dropped from the scores
        kd = inside[:, None, None] & cm[None, :, None]
        k = tl.load(
            k_ptr + b * s_kb + kv * s_kh + n[:, None, None] * s_kn + qd[None, :, :],
            mask=kd,
            other=0.0,
        )
        v = tl.load(
            v_ptr + b * s_vb + kv * s_vh + n[:, None, None] * s_vn + qd[None, :, :],
            mask=kd,
            other=0.0,
        )
        nm = inside
        if WRITE:  # the write position's stale slot: its new key is scored after the loop
            nm = nm & (n != pos)
        if MASK == 1:  # boolean: True attends
            nm = nm & (tl.load(m_ptr + b * s_mb + h * s_mh + n, mask=inside, other=0) != 0)
        s = tl.sum(tl.sum(k.to(tl.float32) * q[None, :, :], 2), 1)
        if MASK == 2:  # additive
            s += tl.load(m_ptr + b * s_mb + h * s_mh + n, mask=nm, other=0.0).to(tl.float32)
        s = tl.where(nm, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 0))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)  # a chunk masked so far: no NaN
        alpha = tl.exp(m_i - m_use)
        p = tl.exp(s - m_use)
        acc = acc * alpha + tl.sum(p[:, None, None] * v.to(tl.float32), 0)
        l_i = l_i * alpha + tl.sum(p, 0)
        m_i = m_new
    if WRITE:  # the new key and value, once, in the program whose chunk holds their position
        holds = (split == pos // CHUNK) & (pos < keys)
        own = holds  # (and, under a boolean mask, attended)
        sn = tl.sum(tl.sum(kn.to(tl.float32) * q, 1), 0)
        if MASK == 1:
            own = own & (tl.load(m_ptr + b * s_mb + h * s_mh + pos, mask=own, other=0) != 0)
        if MASK == 2:
            sn += tl.load(m_ptr + b * s_mb + h * s_mh + pos, mask=own, other=0.0).to(tl.float32)
        sn = tl.where(own, sn, float("-inf"))  # (not this program's: a no-op update)
        m_new = tl.maximum(m_i, sn)
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_use)
        p_n = tl.exp(sn - m_use)
        acc = acc * alpha + p_n * vn.to(tl.float32)
        l_i = l_i * alpha + p_n
        m_i = m_new
        if (h % GROUPS == 0) & holds:  # stored even where the mask hides it
            tl.store(k_ptr + b * s_kb + kv * s_kh + pos * s_kn + qd, kn, mask=cm[:, None])
            tl.store(v_ptr + b * s_vb + kv * s_vh + pos * s_vn + qd, vn, mask=cm[:, None])
    tl.store(acc_ptr + (bh * SPLITS + split) * (PIECES * PIECE) + qd, acc)
    tl.store(ml_ptr + (bh * SPLITS + split) * 2, m_i)
    tl.store(ml_ptr + (bh * SPLITS + split) * 2 + 1, l_i)
    if FUSED:
        tl.debug_barrier()  # every warp's stores issued before the ticket (a release) is drawn
        ticket = tl.atomic_add(count_ptr + bh, 1, sem="acq_rel", scope="gpu")
        if ticket == SPLITS - 1:
            _combine(
                acc_ptr, ml_ptr, o_ptr, bh, s_ob, s_oh,
                HEADS, DIM, PIECES * PIECE, SPLITS, BLOCK_S, ".cg",
            )  # fmt: skip
            tl.store(count_ptr + bh, 0)


@triton.jit
def _rotated(x, x_ptr, cs, sn, qd, cm, DIM: tl.constexpr):
    """``x`` (a head's values at ``qd``, loaded from ``x_ptr``) rotated as Llama's rotary
    embedding by the float32 ``cs``/``sn`` at ``qd``: ``x * cos + rotate_half(x) * sin``, in
    float32, rounded to ``x``'s dtype."""
    half = DIM // 2
    other = tl.load(x_ptr + (qd + half) % DIM, mask=cm[:, None], other=0.0).to(tl.float32)
    other = tl.where(qd < half, -other, other)  # rotate_half: cat(-x2, x1)
    return (x.to(tl.float32) * cs + other * sn).to(x.dtype)


@triton.jit
def _combine(
    acc_ptr, ml_ptr, o_ptr, bh, s_ob, s_oh,
    HEADS: tl.constexpr, DIM: tl.constexpr, BLOCK_D: tl.constexpr, SPLITS: tl.constexpr,
    BLOCK_S: tl.constexpr, CACHE: tl.constexpr,
):  # fmt: skip
    """Row·head ``bh``'s partial softmaxes rescaled to one maximum and summed into ``o``
    (``CACHE``: the loads' cache modifier)."""
    b = bh // HEADS
    h = bh % HEADS
    s = tl.arange(0, BLOCK_S)
    sm = s < SPLITS
    d = tl.arange(0, BLOCK_D)
    m = tl.load(ml_ptr + (bh * SPLITS + s) * 2, mask=sm, other=float("-inf"), cache_modifier=CACHE)
    l_s = tl.load(ml_ptr + (bh * SPLITS + s) * 2 + 1, mask=sm, other=0.0, cache_modifier=CACHE)
    top = tl.max(m, 0)
    w = tl.exp(m - tl.where(top == float("-inf"), 0.0, top))
    acc = tl.load(
        acc_ptr + (bh * SPLITS + s[:, None]) * BLOCK_D + d[None, :],
        mask=sm[:, None],
        other=0.0,
        cache_modifier=CACHE,
    )
    out = tl.sum(w[:, None] * acc, 0) / tl.sum(w * l_s, 0)
    tl.store(o_ptr + b * s_ob + h * s_oh + d, out.to(o_ptr.dtype.element_ty), mask=d < DIM)


@triton.jit
def _split_kv_combine(
    acc_ptr, ml_ptr, o_ptr, s_ob, s_oh,
    HEADS: tl.constexpr, DIM: tl.constexpr, BLOCK_D: tl.constexpr, SPLITS: tl.constexpr,
    BLOCK_S: tl.constexpr,
):  # fmt: skip
    """Program (row·head): :func:`_combine`. The next kernel may launch at once (a GEMV
    launched as a programmatic dependent, ``SERIFU_GEMV_PDL``, reads its first weights on the
    SMs these few programs leave idle, and waits for this kernel's output; for any other kernel
    this changes nothing)."""
    gdc_launch_dependents()
    _combine(
        acc_ptr, ml_ptr, o_ptr, tl.program_id(0), s_ob, s_oh,
        HEADS, DIM, BLOCK_D, SPLITS, BLOCK_S, "",
    )  # fmt: skip


_COUNTERS: dict[tuple[str, int], torch.Tensor] = {}
_OUTGROWN: list[torch.Tensor] = []  # buffers a larger one replaced: graphs may still read them


def counters(device: torch.device, n: int) -> torch.Tensor:
    """``n`` (or more) int32 zeros on ``device`` for the fused partial kernel's tickets, one
    buffer per CUDA stream and reused: every launch leaves its counters at 0 (the last program
    of a row·head resets its own), so none is zeroed again, not even in a captured graph. A
    buffer is never freed (a captured graph keeps its address)."""
    key = (str(device), torch.cuda.current_stream(device).stream_id)
    buf = _COUNTERS.get(key)
    if buf is None or buf.numel() < n:
        if buf is not None:
            _OUTGROWN.append(buf)
        buf = torch.zeros(max(n, 256), device=device, dtype=torch.int32)
        _COUNTERS[key] = buf
    return buf


def launch(
    q: Any,
    k: Any,
    v: Any,
    mask: Any,
    out: Any,
    scale: float,
    splits: int,
    chunk: int,
    block_n: int,
    num_warps: int | None = None,
    fused: bool = False,
    new: tuple[Any, Any, Any] | None = None,
    rope: tuple[Any, Any] | None = None,
) -> None:
    """``out`` [B, 1, H, D] from ``q`` [B, H, 1, D], ``k``/``v`` [B, Hkv, L, D] (last dim
    contiguous) and ``mask`` (None, bool or additive, broadcastable to [B, H, 1, L]);
    ``num_warps`` per partial program (None: :func:`serifu.accel.split_kv.warps_for`);
    ``fused``: the combine inside the partial kernel (its ``FUSED``), else its own kernel
    after it. ``new``: the new key and value [B, Hkv, 1, D], which the kernel writes at
    position ``length - 1``, and the length tensor (its ``WRITE``). ``rope`` (with ``new``):
    the step's cos and sin [B, 1, D] (last dim contiguous), by which the kernel rotates the
    unrotated ``q`` and new key (its ``ROPE``)."""
    bsz, heads, _, dim = q.shape
    keys = k.shape[2]
    piece = piece_width(dim)
    block_d = padded_width(dim)
    pieces = block_d // piece
    if num_warps is None:
        num_warps = warps_for(block_n, block_d)
    acc = torch.empty(bsz * heads * splits * block_d, device=q.device, dtype=torch.float32)
    ml = torch.empty(bsz * heads * splits * 2, device=q.device, dtype=torch.float32)
    if mask is None:
        kind, m, sm = 0, q, (0, 0)
    else:  # its last dim contiguous (split_kv.attention_forward checks)
        kind = 1 if mask.dtype == torch.bool else 2
        m = mask
        sm = (
            mask.stride(0) if mask.shape[0] > 1 else 0,
            mask.stride(1) if mask.shape[1] > 1 else 0,
        )
    count = counters(q.device, bsz * heads) if fused else acc  # (unread unless fused)
    kn, vn, length = new if new is not None else (q, q, count)  # (unread unless new)
    if rope is not None and new is None:
        raise ValueError("the rotary embedding is folded only into a writing launch (new=...)")
    cos, sin = rope if rope is not None else (q, q)  # (unread unless rope)
    _split_kv_partial[(bsz * heads, splits)](
        q, k, v, m, acc, ml, count, out, kn, vn, length, cos, sin,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), *sm, out.stride(0), out.stride(2),
        kn.stride(0), kn.stride(1), vn.stride(0), vn.stride(1),
        cos.stride(0) if cos.shape[0] > 1 else 0, keys, scale,
        HEADS=heads, GROUPS=heads // k.shape[1], DIM=dim, PIECE=piece, PIECES=pieces,
        BLOCK_N=block_n, CHUNK=chunk, SPLITS=splits, BLOCK_S=triton.next_power_of_2(splits),
        MASK=kind, FUSED=fused, WRITE=new is not None, ROPE=rope is not None,
        num_warps=num_warps,
    )  # fmt: skip
    if fused:
        return
    _split_kv_combine[(bsz * heads,)](
        acc, ml, out, out.stride(0), out.stride(2),
        HEADS=heads, DIM=dim, BLOCK_D=block_d, SPLITS=splits,
        BLOCK_S=triton.next_power_of_2(splits),
    )  # fmt: skip
