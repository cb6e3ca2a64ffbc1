"""Choosing the next token: greedy or sampled, with the usual penalties and filters.

Keys of ``params`` (all optional): ``logit_bias`` {token id: bias}, ``repetition_penalty``
(divides positive / multiplies negative scores of seen tokens), ``presence_penalty`` and
``frequency_penalty`` (subtracted once per seen token / per occurrence, as in the OpenAI
API; "seen" is the prompt window plus the reply so far), ``do_sample``, ``temperature``,
``top_k``, ``top_p`` and ``min_p`` (keep tokens with at least ``min_p`` × the top
probability), ``no_repeat_ngram_size`` (n: a token that would say again an n-token piece of
the reply so far is never chosen, so a reply cannot loop; the prompt is not counted, so her
answer may reuse the player's words). Tokens already at ``-inf`` (masked) stay there.
``greedy_rows`` (row indices, with ``do_sample``): those rows take the most likely token,
the others are sampled with the same random draws as without it (e.g. best-of candidates,
one of them the mode).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def next_tokens(
    logits: Any,
    seen: Any,
    params: Mapping[str, Any],
    generator: Any | None,
    reply: tuple[Any, Any] | None = None,
) -> Any:
    """``logits`` [B, V] of the last position; ``seen`` [B, n] token ids so far (penalised).

    ``reply``: (start, end) [B] of each row's reply in ``seen`` (what
    ``no_repeat_ngram_size`` looks at); without it that parameter is not applied."""
    import torch

    logits = logits.float()
    bias = params.get("logit_bias") or {}
    if bias:
        width = logits.shape[-1]
        pairs = [(int(k), float(v)) for k, v in bias.items() if 0 <= int(k) < width]
        if pairs:
            index = torch.tensor([k for k, _ in pairs], device=logits.device)
            values = torch.tensor([v for _, v in pairs], device=logits.device)
            logits = logits.index_add(1, index, values.expand(logits.shape[0], -1))
    penalty = float(params.get("repetition_penalty", 1.0) or 1.0)
    if penalty != 1.0 and seen.numel():
        scores = logits.gather(1, seen)
        logits = logits.scatter(
            1, seen, torch.where(scores < 0, scores * penalty, scores / penalty)
        )
    presence = float(params.get("presence_penalty", 0.0) or 0.0)
    frequency = float(params.get("frequency_penalty", 0.0) or 0.0)
    if (presence or frequency) and seen.numel():
        counts = torch.zeros_like(logits).scatter_add(
            1, seen, torch.ones_like(seen, dtype=logits.dtype)
        )
        logits = logits - frequency * counts - presence * (counts > 0).to(logits.dtype)
    size = int(params.get("no_repeat_ngram_size", 0) or 0)
    if size > 1 and reply is not None and seen.numel():
        logits = ban_repeats(logits, seen, size, *reply)
    if not params.get("do_sample", False):
        return logits.argmax(-1)
    logits = logits / max(float(params.get("temperature", 1.0)), 1e-5)
    top_k = int(params.get("top_k", 0) or 0)
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    top_p = float(params.get("top_p", 1.0))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    min_p = float(params.get("min_p", 0.0) or 0.0)
    if min_p > 0.0:
        probs = logits.softmax(-1)
        floor = min_p * probs.max(-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, float("-inf"))
    probs = logits.softmax(-1)
    chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    greedy = params.get("greedy_rows") or ()
    if greedy:  # the filters above never drop a row's top token
        rows = device_ids(greedy, logits.device)
        chosen[rows] = logits[rows].argmax(-1)
    return chosen


def ban_repeats(logits: Any, seen: Any, size: int, start: Any, end: Any) -> Any:
    """``logits`` with -inf for every token that would complete a ``size``-token piece that
    row's reply ``seen[start:end]`` already holds (``start``, ``end``: ints shared by the
    rows, or [B] tensors); on the device, no host sync."""
    import torch

    width = seen.shape[1]
    if width < size:
        return logits
    windows = seen.unfold(1, size, 1)  # [B, width - size + 1, size]
    first = torch.arange(windows.shape[1], device=seen.device)[None, :]
    if isinstance(end, int):
        if end - start < size - 1:
            return logits
        tail = seen[:, end - size + 1 : end]
        inside = (first >= start) & (first + size - 1 < end)
    else:
        offsets = torch.arange(size - 1, device=seen.device)
        tail = seen.gather(1, (end[:, None] - (size - 1) + offsets).clamp(min=0, max=width - 1))
        inside = (first >= start[:, None]) & (first + size - 1 < end[:, None])
        inside &= (end - start >= size - 1)[:, None]
    match = (windows[:, :, :-1] == tail[:, None, :]).all(-1) & inside
    hits = torch.zeros_like(logits).scatter_add_(1, windows[:, :, -1], match.to(logits.dtype))
    return logits.masked_fill(hits > 0, float("-inf"))


_IDS: dict[tuple[tuple[int, ...], str], Any] = {}


def device_ids(ids: Iterable[int], device: Any) -> Any:
    """``ids`` as a tensor on ``device``, made once: a new tensor every step is a blocking
    copy from the host, which waits for the step running on a GPU (and so undoes the
    look-ahead of the static loops)."""
    import torch

    key = (tuple(sorted(set(ids))), str(device))
    if key not in _IDS:
        _IDS[key] = torch.tensor(key[0], device=device)
    return _IDS[key]
