"""Causal-LM loss without materialising the full logits.

``model(labels=...)`` builds ``tokens x vocab`` logits and upcasts them to float32: for
Gemma's 262k vocabulary that is 1 MiB per token, more than the rest of the step. Here
the decoder's hidden states are gathered at the positions that have a label, and the
output head runs over chunks of them, so at most one chunk of logits is alive at a time.

When the head is frozen (QLoRA: it always is), each chunk's gradient with respect to its
hidden states is taken right away in the forward pass and kept (``tokens x dim``, small);
backward only scales it. That runs the head twice per chunk (forward, input gradient)
instead of three times (forward, recomputed forward, input gradient). Otherwise the
chunks are checkpointed and recomputed in backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

IGNORE = -100


def decoder_and_head(model: Any) -> tuple[Any, Callable[[torch.Tensor], torch.Tensor], bool]:
    """The transformer stack (returns hidden states), a hidden -> logits function, and
    whether that head is frozen (no parameter of it needs a gradient).

    Works for a plain ``*ForCausalLM`` or a PEFT-wrapped one (LoRA layers live inside).
    """
    from serifu.modeling.unwrap import base_model_of

    base = base_model_of(model)
    decoder = getattr(base, base.base_model_prefix)
    head = base.get_output_embeddings()
    softcap = getattr(base.config, "final_logit_softcapping", None)

    def to_logits(h: torch.Tensor) -> torch.Tensor:
        logits = head(h)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    frozen = not any(p.requires_grad for p in head.parameters())
    return decoder, to_logits, frozen


def _chunk_loss(
    to_logits: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    logits = to_logits(h).float()
    return torch.nn.functional.cross_entropy(logits, y, reduction="sum")


class _FrozenHeadLoss(torch.autograd.Function):
    """Summed cross-entropy over chunks; the input gradient is computed in forward."""

    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        y: torch.Tensor,
        to_logits: Callable[[torch.Tensor], torch.Tensor],
        chunk_tokens: int,
    ) -> torch.Tensor:
        grad = torch.empty_like(h)
        total = h.new_zeros((), dtype=torch.float32)
        with torch.enable_grad():
            for start in range(0, h.shape[0], chunk_tokens):
                hs = h[start : start + chunk_tokens].detach().requires_grad_(True)
                loss = _chunk_loss(to_logits, hs, y[start : start + chunk_tokens])
                (g,) = torch.autograd.grad(loss, hs)
                grad[start : start + chunk_tokens] = g
                total += loss.detach()
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_out.to(grad.dtype), None, None, None


def labelled_positions(
    hidden: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states, next-token labels) at the positions that have a label, flattened:
    ``labels`` are aligned with the inputs, the shift by one happens here."""
    h = hidden[:, :-1, :].reshape(-1, hidden.shape[-1])
    y = labels[:, 1:].reshape(-1)
    keep = (y != IGNORE).nonzero(as_tuple=True)[0]
    return h.index_select(0, keep), y.index_select(0, keep)


def chunked_lm_loss(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    to_logits: Callable[[torch.Tensor], torch.Tensor],
    *,
    chunk_tokens: int = 4096,
    head_frozen: bool = False,
) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropy and the number of labelled tokens.

    ``hidden`` is ``[batch, seq, dim]`` and ``labels`` ``[batch, seq]`` aligned with the
    inputs (the shift by one happens here); ``-100`` marks positions without a label.
    ``head_frozen``: nothing inside ``to_logits`` needs a gradient (gradients then reach
    ``hidden`` only, taken chunk by chunk in forward).
    """
    h, y = labelled_positions(hidden, labels)
    n = int(y.numel())
    if head_frozen and torch.is_grad_enabled() and h.requires_grad and n:
        return _FrozenHeadLoss.apply(h, y, to_logits, chunk_tokens), n
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk_tokens):
        hs, ys = h[start : start + chunk_tokens], y[start : start + chunk_tokens]
        if torch.is_grad_enabled() and hs.requires_grad:
            total = total + checkpoint(_chunk_loss, to_logits, hs, ys, use_reentrant=False)
        else:
            total = total + _chunk_loss(to_logits, hs, ys)
    return total, n
