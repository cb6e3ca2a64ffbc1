"""Choosing the next token: greedy, or temperature / top-p sampling with a repetition penalty."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def next_tokens(logits: Any, seen: Any, params: Mapping[str, Any], generator: Any | None) -> Any:
    """``logits`` [B, V] of the last position; ``seen`` [B, n] token ids so far (penalised)."""
    import torch

    logits = logits.float()
    penalty = float(params.get("repetition_penalty", 1.0))
    if penalty != 1.0 and seen.numel():
        scores = logits.gather(1, seen)
        logits = logits.scatter(
            1, seen, torch.where(scores < 0, scores * penalty, scores / penalty)
        )
    if not params.get("do_sample", False):
        return logits.argmax(-1)
    logits = logits / max(float(params.get("temperature", 1.0)), 1e-5)
    top_p = float(params.get("top_p", 1.0))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = (
            cumulative - sorted_logits.softmax(-1) > top_p
        )  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
