"""One-query attention with the keys split over many programs (flash-decoding), for replies.

A reply's decode step asks one query per head against the whole static KV cache. cuDNN's
kernel (PyTorch's choice on an H100/H200) gives each head one thread block: line-3.6b's 32
heads at batch 1 leave most of an H200's 132 SMs idle, and a layer's ~5 MB of cache took
~9.5 µs, 11 % of the step (docs/benchmarks.md, session 16). Here each head's keys are cut into
chunks, one Triton program each, and the last of a head's programs to finish combines the
chunks' partial softmaxes (max, sum, weighted values; the log-sum-exp rescaling of
flash-decoding); :data:`FUSED` off, a second small kernel does.

``register()`` adds the attention implementation ``"serifu_split_kv"`` to transformers
(masks as for ``sdpa``): prompts and batches of more than :data:`MAX_ROWS` rows run HF's own
sdpa function; one-query passes run :func:`decode_attention`, a torch custom op that inductor
leaves alone and a CUDA graph captures. On CUDA it launches the Triton kernels
(:mod:`serifu.accel.split_kv_kernels`); elsewhere it runs the same split algorithm in PyTorch
(:func:`split_attention_reference`), which the tests compare with sdpa. No maintained
library here has a one-query split-key kernel that runs inside HF's captured step:
FlexAttention's needs a block mask HF builds inside the step (not capturable, session 17),
flash-attn and FlashInfer ship no wheels for this image.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

import torch

from serifu.accel.kv_write import PENDING, write_at_length, write_pending
from serifu.accel.rope_fold import ROPE, rotate

NAME = "serifu_split_kv"
"""The attention implementation's name in transformers' registry."""
BLOCK_N = 64
"""Keys a program reads per iteration at most (a chunk is a multiple of it)."""
TILE = 8192
"""Values (keys x the head's padded width) a program reads per iteration: 64 keys of heads up
to 128 wide, 32 of 256-wide heads (:func:`block_for`)."""
PROGRAMS = 264
"""Programs per launch aimed at: two per SM of an H100/H200."""
WARPS: int | None = None
"""Warps a partial program runs; None: :func:`warps_for` its tile."""
FUSED = True
"""The combine inside the partial kernel (its last program of a head does it): one launch a
layer instead of two (session 34)."""
MAX_ROWS = 1
"""Batches of up to this many rows split their keys (measured at batch 1 only); larger ones
run HF's sdpa."""


def plan(
    rows_heads: int, keys: int, programs: int = PROGRAMS, block_n: int = BLOCK_N
) -> tuple[int, int]:
    """(splits, chunk): each (row, head)'s ``keys`` cut into ``splits`` chunks of ``chunk``
    keys (a multiple of ``block_n``) so that about ``programs`` programs run."""
    blocks = max(1, math.ceil(keys / block_n))
    want = max(1, min(blocks, math.ceil(programs / max(rows_heads, 1))))
    chunk = math.ceil(blocks / want) * block_n
    return math.ceil(keys / chunk), chunk


def piece_width(dim: int) -> int:
    """A contiguous run of a head's values as the kernels load it: ``dim``'s largest
    power-of-two divisor, at most 128 (96 -> 32)."""
    return min(dim & -dim, 128)


def padded_width(dim: int) -> int:
    """A head's width as the kernels read it: runs of :func:`piece_width`, as many as the next
    power of two (96 -> 4 x 32 = 128)."""
    piece = piece_width(dim)
    return piece * (1 << (dim // piece - 1).bit_length())


def block_for(dim: int) -> int:
    """Keys a program reads per iteration for heads ``dim`` wide (:data:`TILE` values)."""
    return max(16, min(BLOCK_N, TILE // padded_width(dim)))


def warps_for(block_n: int, block_d: int) -> int:
    """Warps for a partial program reading ``block_n`` keys of ``block_d`` values: about 4,096
    values a warp (2 for a :data:`TILE`). Session 33's sweep (``bench/gpu/split_kv_sweep.py``,
    416 keys, 32 layers in one graph, µs a layer) on an H100, against session 32's 64 keys and
    8 warps: line-3.6b's heads 7.18 against 8.67, stablelm-beta-7b's 7.19 against 8.38,
    novel-gptj-6b's (32 keys) 7.98 against 9.04, gemma-3-270m's (32 keys) 4.96 against 6.71;
    each the fastest of the 36 settings tried or within 0.03 µs of it."""
    return max(2, min(8, block_n * block_d // 4096))


def split_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """The kernels' algorithm in PyTorch: ``q`` [B, H, 1, D], ``k``/``v`` [B, Hkv, L, D],
    ``mask`` bool (True attends) or additive, broadcastable to [B, H, 1, L]; returns
    [B, 1, H, D] (HF's attention output layout) in ``q``'s dtype."""
    bsz, heads, _, dim = q.shape
    keys = k.shape[2]
    groups = heads // k.shape[1]
    kf = k.float().repeat_interleave(groups, dim=1)  # [B, H, L, D]
    vf = v.float().repeat_interleave(groups, dim=1)
    s = (kf @ (q.float() * scale).transpose(-1, -2)).squeeze(-1)  # [B, H, L]
    if mask is not None:
        m = mask.expand(bsz, heads, 1, keys).squeeze(2)
        s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else s + m.float()
    splits, chunk = plan(bsz * heads, keys, block_n=block_for(dim))
    parts_m, parts_l, parts_acc = [], [], []
    for i in range(splits):
        sc = s[..., i * chunk : (i + 1) * chunk]
        top = sc.amax(-1, keepdim=True)
        p = torch.exp(sc - top.nan_to_num(neginf=0.0))
        parts_m.append(top)
        parts_l.append(p.sum(-1, keepdim=True))
        parts_acc.append(p.unsqueeze(-2) @ vf[..., i * chunk : (i + 1) * chunk, :])
    m_all = torch.cat(parts_m, -1)  # [B, H, S]
    w = torch.exp(m_all - m_all.amax(-1, keepdim=True).nan_to_num(neginf=0.0))
    num = torch.stack([w[..., i, None, None] * a for i, a in enumerate(parts_acc)]).sum(0)
    den = (w * torch.cat(parts_l, -1)).sum(-1)
    out = num.squeeze(-2) / den.unsqueeze(-1)  # [B, H, D]
    return out.unsqueeze(1).to(q.dtype)


@torch.library.custom_op("serifu::split_kv_attention", mutates_args=())
def decode_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """One query per (row, head) against the cache: [B, 1, H, D] (see the module)."""
    if not q.is_cuda:
        return split_attention_reference(q, k, v, mask, scale)
    return _on_kernels(q, k, v, mask, scale)


def _on_kernels(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    new: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    rope: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The ops' CUDA path: the Triton kernels planned for this cache (``new``: the key and
    value the kernel writes, and the length; ``rope``: the cos and sin it rotates ``q`` and
    the new key by)."""
    from serifu.accel import split_kv_kernels

    bsz, heads, _, dim = q.shape
    out = torch.empty(bsz, 1, heads, dim, device=q.device, dtype=q.dtype)
    block = block_for(dim)
    splits, chunk = plan(bsz * heads, k.shape[2], block_n=block)
    split_kv_kernels.launch(
        q.contiguous(), k, v, mask, out, scale, splits, chunk, block,
        num_warps=WARPS, fused=FUSED, new=new, rope=rope,
    )  # fmt: skip
    return out


def _output_like(q: torch.Tensor, *_args: Any, **_kwargs: Any) -> torch.Tensor:
    """Both ops' fake (their output's shape under tracing): [B, 1, H, D] from ``q``."""
    bsz, heads, _, dim = q.shape
    return q.new_empty(bsz, 1, heads, dim)


decode_attention.register_fake(_output_like)


@torch.library.custom_op("serifu::split_kv_attention_write", mutates_args=("k_cache", "v_cache"))
def decode_attention_write(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    length: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    cos: torch.Tensor | None = None,
    sin: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`decode_attention` after writing ``k_new``/``v_new`` [B, Hkv, 1, D] into the
    caches at position ``length - 1`` (``length``: the layer's one-element length tensor, which
    its update advanced; :mod:`serifu.accel.kv_write`). On CUDA the kernel writes them itself
    and scores them from registers after its loop. ``cos``/``sin`` [B, 1, D]: ``q`` and
    ``k_new`` come unrotated, and are rotated first (:mod:`serifu.accel.rope_fold`; on CUDA
    by the kernel)."""
    rope = (cos, sin) if cos is not None and sin is not None else None
    if not q.is_cuda:
        if rope is not None:
            q, k_new = rotate(q, *rope), rotate(k_new, *rope)
        write_at_length(k_cache, v_cache, length, k_new, v_new)
        return split_attention_reference(q, k_cache, v_cache, mask, scale)
    return _on_kernels(q, k_cache, v_cache, mask, scale, new=(k_new, v_new, length), rope=rope)


decode_attention_write.register_fake(_output_like)


def attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: one-query passes of up to
    :data:`MAX_ROWS` rows split over the keys; the rest as HF's sdpa: prompts, larger batches,
    soft-capped or sink attention, dropout, and rows × heads that already fill the GPU (one
    split each: nothing to gain over sdpa's kernel)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    pending = kwargs.pop(PENDING, None)  # a one-token update left to the kernel (kv_write)
    rope = kwargs.pop(ROPE, None)  # its query and key unrotated: the cos and sin (rope_fold)
    if rope is not None and pending is None:
        raise RuntimeError("an unrotated query came without a deferred key (rope_fold)")
    rows_heads = query.shape[0] * query.shape[1]
    splits = plan(rows_heads, key.shape[2], block_n=block_for(query.shape[-1]))[0]
    plain = (
        query.shape[2] == 1
        and query.shape[0] <= MAX_ROWS
        and splits > 1  # else one block a head
        and dropout == 0.0
        and kwargs.get("softcap") is None
        and kwargs.get("s_aux") is None
        and kwargs.get("position_bias") is None
        and key.stride(-1) == 1
        and value.stride(-1) == 1
        and (attention_mask is None or attention_mask.stride(-1) == 1)
    )
    if pending is not None and not (
        plain
        and pending[1].stride(-1) == 1
        and pending[2].stride(-1) == 1
        and (rope is None or all(t.stride(-1) == 1 for t in rope))
    ):
        if rope is not None:  # rotated here, as the model would have
            layer, k_new, v_new = pending
            query, pending = rotate(query, *rope), (layer, rotate(k_new, *rope), v_new)
            rope = None
        write_pending(pending)  # as StaticLayer.update would have
        pending = None
    if not plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    scale = float(scaling if scaling is not None else query.shape[-1] ** -0.5)
    if pending is not None:
        layer, k_new, v_new = pending
        length = layer.cumulative_length
        cos, sin = rope if rope is not None else (None, None)
        out = decode_attention_write(
            query, k_new, v_new, key, value, length, attention_mask, scale, cos, sin
        )
        return out, None
    return decode_attention(query, key, value, attention_mask, scale), None


def register() -> str:
    """Adds :data:`NAME` to transformers' attention and mask registries (sdpa's masks);
    returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


@functools.cache
def kernel_error(device: str) -> str | None:
    """Why the kernels cannot serve on ``device`` (None: a small problem, line-3.6b's head width
    and a mask with a masked chunk, ran and matched the PyTorch algorithm, as it is, writing a
    new key and value first (:func:`decode_attention_write`), and rotating the query and that
    key before (:mod:`serifu.accel.rope_fold`)). Checked once per
    device, so that a GPU or Triton release they do not run on falls back to sdpa."""
    from serifu.accel.kernel_check import kernel_error as check

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 4, n, 96, generator=g) for n in (1, 200, 200))
        new_k, new_v = (torch.randn(1, 4, 1, 96, generator=g) for _ in "kv")
        mask = (torch.arange(200) >= 70).view(1, 1, 1, 200)
        on = [t.to(device, torch.bfloat16) for t in (q, k, v, new_k, new_v)]
        qf, kf, vf, nkf, nvf = (t.float().cpu() for t in on)
        ref = split_attention_reference(qf, kf, vf, mask, 0.1)
        got = decode_attention(*on[:3], mask.to(device), 0.1)
        kf[:, :, 150:151], vf[:, :, 150:151] = nkf, nvf  # written at 150 (the length less one)
        length = torch.tensor(151, device=device)
        written = decode_attention_write(*on[:1], *on[3:], *on[1:3], length, mask.to(device), 0.1)
        ref_written = split_attention_reference(qf, kf, vf, mask, 0.1)
        cached = (on[1][:, :, 150:151], on[2][:, :, 150:151])
        # and with the query and new key unrotated, rotated first (rope_fold)
        angle = torch.randn(1, 1, 48, generator=g).repeat(1, 1, 2)
        cos, sin = (t.to(device, torch.bfloat16) for t in (angle.cos(), angle.sin()))
        k2, v2 = on[1].clone(), on[2].clone()
        turned = decode_attention_write(
            on[0], on[3], on[4], k2, v2, length, mask.to(device), 0.1, cos, sin
        )
        qr, nkr = (rotate(t, cos.float().cpu(), sin.float().cpu()) for t in (qf, nkf))
        qr, nkr = (t.to(torch.bfloat16).float() for t in (qr, nkr))
        kf[:, :, 150:151] = nkr
        ref_turned = split_attention_reference(qr, kf, vf, mask, 0.1)
        mine = (got, written, *cached, turned, k2[:, :, 150:151])
        both = torch.cat([t.float().cpu().flatten() for t in mine])
        refs = (ref, ref_written, nkf, nvf, ref_turned, nkr)
        return both, torch.cat([t.flatten() for t in refs])

    return check(run, atol=2e-2, rtol=2e-2)


def runs_split_kv(model: Any) -> bool:
    """Whether the model's attention is :data:`NAME` (set by :func:`use_split_kv`)."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None) == NAME


def use_split_kv(model: Any) -> bool:
    """Switches a model whose attention runs HF's sdpa to :data:`NAME`; False (unchanged)
    for any other implementation (eager, flash, flex), a model that cannot switch, or a device
    where :func:`kernel_error` found the kernels failing (with a one-line notice)."""
    if runs_split_kv(model):
        return True
    current = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if current != "sdpa" or not hasattr(model, "set_attn_implementation"):
        return False
    error = kernel_error(str(next(model.parameters()).device))
    if error is not None:
        print(
            f"note: replies use sdpa attention (split-key kernels failed: {error})", file=sys.stderr
        )
        return False
    register()
    try:
        model.set_attn_implementation(NAME)
    except (ValueError, ImportError):
        return False
    return runs_split_kv(model)
