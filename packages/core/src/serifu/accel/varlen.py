"""Attention over packed rows with variable-length flash attention.

A packed row holds several examples; each must attend only to itself. Through SDPA
that needs an explicit block-diagonal mask, which keeps SDPA off its flash kernel and
costs quadratic work per row. Here the examples' boundaries travel as cumulative
sequence lengths (``cu_seq_lens_q``, the names of transformers' ``FlashAttentionKwargs``)
and ``torch.nn.attention.varlen.varlen_attn`` runs flash attention on all of them at
once, with no mask and no padding, so a step's examples can share one long row. Wherever
that kernel cannot run (CPU, dropout, a sliding window the installed torch cannot
express) the same boundaries become a block-diagonal mask for transformers' SDPA path,
so results are the same either way.

:func:`use_varlen_attention` registers the implementation (``"serifu_varlen"``) and
switches a model to it. The model then builds no mask of its own: use it for packed
rows (boundaries given) or right-padded/unpadded batches (causal attention is exact for
every real token there; padding comes after them).
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import torch

NAME = "serifu_varlen"


def boundaries(position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Cumulative sequence lengths (int32, starts and the end) of the examples in packed
    rows, read from position ids that restart at 0 for every example; and the longest."""
    flat = position_ids.reshape(-1)
    starts = (flat == 0).nonzero(as_tuple=True)[0]
    if starts.numel() == 0 or int(starts[0]) != 0:
        starts = torch.cat([starts.new_zeros(1), starts])
    cu = torch.cat([starts, starts.new_tensor([flat.numel()])]).to(torch.int32)
    # a new row starts a new example even if its position ids do not restart
    width = position_ids.shape[-1]
    rows = torch.arange(0, flat.numel() + 1, width, dtype=torch.int32)
    cu = torch.unique(torch.cat([cu, rows]))
    return cu, int((cu[1:] - cu[:-1]).max())


def varlen_kwargs(position_ids: torch.Tensor) -> dict[str, Any]:
    """The keyword arguments a model forward takes to run :func:`varlen_attention`."""
    cu, longest = boundaries(position_ids)
    return {
        "cu_seq_lens_q": cu,
        "cu_seq_lens_k": cu,
        "max_length_q": longest,
        "max_length_k": longest,
    }


def block_mask(cu: torch.Tensor, width: int, sliding_window: int | None = None) -> torch.Tensor:
    """``[rows, 1, width, width]`` boolean mask: causal within each example, nothing across,
    and at most ``sliding_window`` keys back (transformers' convention) when given."""
    total = int(cu[-1])
    pos = torch.arange(total, device=cu.device)
    example = torch.searchsorted(cu[1:].to(pos.dtype), pos, right=True).view(-1, width)
    # segments from 1: no example is a shared prefix (segment 0) here
    return segment_mask(example + 1, pos.view(-1, width), sliding_window)


def segment_mask(
    segments: torch.Tensor, positions: torch.Tensor, sliding_window: int | None = None
) -> torch.Tensor:
    """``[rows, 1, width, width]`` boolean mask of rows whose examples share a prefix
    (:mod:`serifu.training.shared_prefix`): a token attends to its own segment and to the
    prefix (segment 0), to keys at its position or before, and at most ``sliding_window``
    positions back when given."""
    same = segments[:, :, None] == segments[:, None, :]
    back = positions[:, :, None] - positions[:, None, :]
    mask = (same | (segments[:, None, :] == 0)) & (back >= 0)
    if sliding_window:
        mask &= back < sliding_window
    return mask[:, None]


_FAILED: str | None = None
"""Why the varlen kernel failed on this machine, once it has."""


@lru_cache(maxsize=1)
def _kernel() -> tuple[Any, set[str]] | None:
    if _FAILED is not None:
        return None
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn, set(inspect.signature(varlen_attn).parameters)


def _window(sliding_window: int | None, longest: int, params: set[str]) -> dict[str, Any] | None:
    """Causal (optionally sliding) keyword for the installed ``varlen_attn``; None: cannot."""
    if "window_size" in params:  # torch >= 2.11
        left = sliding_window - 1 if sliding_window and longest > sliding_window else -1
        return {"window_size": (left, 0)}
    if sliding_window and longest > sliding_window:
        return None
    return {"is_causal": True}


def varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-interface signature: ``query`` is ``[batch, heads, seq, dim]``,
    the result ``[batch, seq, heads, dim]``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = kwargs.get("serifu_segments")
    if segments is not None:  # a shared prefix: a mask no varlen kernel takes
        mask = segment_mask(segments, kwargs["serifu_positions"], kwargs.get("sliding_window"))
        return sdpa_attention_forward(
            module, query, key, value, mask, dropout=dropout, scaling=scaling, **kwargs
        )
    cu = kwargs.get("cu_seq_lens_q")
    kernel = _kernel()
    window = None
    half = query.dtype in (torch.float16, torch.bfloat16)
    if cu is not None and kernel is not None and query.is_cuda and half and not dropout:
        window = _window(kwargs.get("sliding_window"), int(kwargs["max_length_q"]), kernel[1])
    if window is None or kernel is None or cu is None:
        if cu is not None:
            attention_mask = block_mask(cu, query.shape[2], kwargs.get("sliding_window"))
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    fn, params = kernel
    batch, heads, seq, dim = query.shape
    groups = heads // key.shape[1]
    if groups > 1 and "enable_gqa" in params:
        window["enable_gqa"] = True
    elif groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)

    def tokens(t: torch.Tensor) -> torch.Tensor:  # [B, H, S, D] -> [B*S, H, D]
        return t.transpose(1, 2).reshape(batch * seq, t.shape[1], dim)

    cu_dev = cu.to(query.device, torch.int32)
    longest = int(kwargs["max_length_q"])
    q, k, v = tokens(query), tokens(key), tokens(value)
    try:
        out = fn(q, k, v, cu_dev, cu_dev, longest, longest, scale=scaling, **window)
    except (RuntimeError, NotImplementedError) as err:  # e.g. a GPU without flash kernels
        _give_up(err)
        return varlen_attention(
            module, query, key, value, attention_mask, dropout, scaling, **kwargs
        )
    return out.reshape(batch, seq, heads, dim), None


def _give_up(err: BaseException) -> None:
    """The kernel failed here: warn once; from now on packed rows take the SDPA mask path."""
    import warnings

    global _FAILED
    _FAILED = str(err)
    _kernel.cache_clear()
    warnings.warn(
        f"variable-length flash attention is unavailable ({err}); packed rows use SDPA "
        "with a block-diagonal mask",
        RuntimeWarning,
        stacklevel=3,
    )


def register() -> None:
    """Make ``"serifu_varlen"`` a transformers attention implementation. It has no mask
    function, so models build no mask for it (transformers skips unknown ones)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, varlen_attention)


def use_varlen_attention(model: Any) -> bool:
    """Switch ``model`` (and its sub-configs) from SDPA to :func:`varlen_attention`.
    Only SDPA models switch (eager may be there on purpose); returns whether it did."""
    register()
    configs = [model.config, *(getattr(model.config, k, None) for k in ("text_config",))]
    switched = False
    for config in configs:
        if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
            config._attn_implementation = NAME
            switched = True
    return switched
