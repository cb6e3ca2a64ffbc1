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

A frozen head that is a plain linear layer (:class:`LinearHead`, every base here) gets
its chunk's gradient in closed form, ``(softmax - onehot) x softcap' @ W``, computed in
place in the chunk's one float32 logits buffer: about 1.6 x the float32 logits alive at
once (2.6 x with a softcap), where autograd through ``cross_entropy`` holds the bf16
logits, the float32 ones, their log-softmax and its gradient (3.1 x; bench/loss_memory.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

IGNORE = -100
SOFTMAX_KERNEL = "eager"
"""How :func:`linear_head_chunk` turns a chunk's logits into loss and gradient on a GPU
when the head does not say (:attr:`LinearHead.fused`): ``"eager"`` (the default) in place
in one float32 buffer, ~9 passes over it; ``"compiled"`` :func:`softmax_nll_grad` through
``torch.compile``, which inductor fuses into one reduction and one pointwise kernel over
the bf16 logits (~6x fewer bytes moved). On gemma-3-270m the eager passes are ~45 % of a
training step's device time; compiled, the captured step (``train.capture``, which turns
it on) ran 1.44-1.54x faster on an H200; the usual launch-bound step 0.99-1.37x
(``bench/gpu/train_capture.py``, rows ``fused`` and ``captured-fused``)."""
_COMPILED_SOFTMAX: Any = None


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


@dataclass(frozen=True)
class LinearHead:
    """A frozen output head ``softcap * tanh((h @ W.T + b) / softcap)`` as plain tensors."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    softcap: float | None = None
    fused: bool = False
    """On CUDA: the chunk's softmax, loss and gradient as one compiled function
    (:func:`softmax_nll_grad`) instead of the in-place eager passes."""


def frozen_linear_head(model: Any) -> LinearHead | None:
    """The output head as a :class:`LinearHead` when it is a plain, frozen ``nn.Linear``
    with floating-point weights (None otherwise: a quantised or LoRA-wrapped head keeps
    the autograd path)."""
    from serifu.modeling.unwrap import base_model_of

    base = base_model_of(model)
    head = base.get_output_embeddings()
    if type(head) is not torch.nn.Linear or not head.weight.dtype.is_floating_point:
        return None
    if any(p.requires_grad for p in head.parameters()):
        return None
    softcap = getattr(base.config, "final_logit_softcapping", None) or None
    return LinearHead(head.weight, head.bias, float(softcap) if softcap else None)


def linear_head_chunk(
    head: LinearHead, h: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, its gradient with respect to ``h``) for one chunk, in closed
    form and in place: one float32 ``tokens x vocab`` buffer (plus the softcap's
    derivative when there is one) instead of autograd's saved tensors. ``weight``: each
    token's weight in the sum (float32; 0 leaves a padding token out, shapes stay fixed)."""
    with torch.no_grad():
        if (head.fused or SOFTMAX_KERNEL == "compiled") and h.is_cuda:
            logits = torch.nn.functional.linear(h, head.weight, head.bias)
            loss, g = compiled_softmax_nll_grad()(logits, y, weight, head.softcap)
            return loss, (g @ head.weight).to(h.dtype)
        a = torch.nn.functional.linear(h, head.weight, head.bias).float()
        slope = None
        if head.softcap:
            a.div_(head.softcap).tanh_()
            slope = torch.mul(a, a).neg_().add_(1.0)  # d capped / d logits = 1 - tanh^2
            a.mul_(head.softcap)
        top = a.amax(dim=-1, keepdim=True)
        target = a.gather(1, y[:, None])
        a.sub_(top).exp_()
        total = a.sum(dim=-1, keepdim=True)
        nll = total.log() + top - target
        a.div_(total)  # softmax
        a.scatter_add_(1, y[:, None], a.new_full((y.shape[0], 1), -1.0))  # - onehot
        if slope is not None:
            a.mul_(slope)
        if weight is not None:
            nll = nll * weight[:, None]
            a.mul_(weight[:, None])
        loss = nll.sum()
        grad = a.to(head.weight.dtype) @ head.weight
    return loss, grad.to(h.dtype)


def softmax_nll_grad(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`linear_head_chunk`'s math written out of place, for ``torch.compile`` to fuse:
    the summed (weighted) NLL of one chunk's logits, and its gradient with respect to them
    (``(softmax - onehot) x softcap' x weight``) in the logits' dtype. Eagerly this would
    hold several float32 copies of the chunk; compiled, none is materialised."""
    x = logits.float()
    slope = None
    if softcap:
        t = torch.tanh(x / softcap)
        x = t * softcap
        slope = 1.0 - t * t
    top = x.amax(dim=-1, keepdim=True)
    e = torch.exp(x - top)
    total = e.sum(dim=-1, keepdim=True)
    nll = total.log() + top - x.gather(1, y[:, None])
    onehot = torch.arange(x.shape[-1], device=x.device)[None, :] == y[:, None]
    g = e / total - onehot.float()
    if slope is not None:
        g = g * slope
    if weight is not None:
        nll = nll * weight[:, None]
        g = g * weight[:, None]
    return nll.sum(), g.to(logits.dtype)


def compiled_softmax_nll_grad() -> Any:
    """:func:`softmax_nll_grad` through ``torch.compile`` (built once per process)."""
    global _COMPILED_SOFTMAX
    if _COMPILED_SOFTMAX is None:
        _COMPILED_SOFTMAX = torch.compile(softmax_nll_grad, fullgraph=True)
    return _COMPILED_SOFTMAX


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
        to_logits: Callable[[torch.Tensor], torch.Tensor] | None,
        chunk_tokens: int,
        linear: LinearHead | None,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        grad = torch.empty_like(h)
        total = h.new_zeros((), dtype=torch.float32)
        for start in range(0, h.shape[0], chunk_tokens):
            part = slice(start, start + chunk_tokens)
            hs, ys = h[part].detach(), y[part]
            if linear is not None:
                loss, g = linear_head_chunk(
                    linear, hs, ys, None if weight is None else weight[part]
                )
            else:
                assert to_logits is not None and weight is None
                with torch.enable_grad():
                    hs.requires_grad_(True)
                    loss = _chunk_loss(to_logits, hs, ys)
                    (g,) = torch.autograd.grad(loss, hs)
            grad[part] = g
            total += loss.detach()
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_out.to(grad.dtype), None, None, None, None, None


def linear_head_loss(
    h: torch.Tensor,
    y: torch.Tensor,
    head: LinearHead,
    chunk_tokens: int,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Summed (``weight``-ed) cross-entropy of hidden states ``h`` ``[tokens, dim]`` against
    ``y`` through a frozen linear head, in chunks of fixed size, the gradient with respect
    to ``h`` taken in forward in closed form (no host synchronisation: shapes stay fixed)."""
    return _FrozenHeadLoss.apply(h, y, None, chunk_tokens, head, weight)


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
    linear: LinearHead | None = None,
) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropy and the number of labelled tokens.

    ``hidden`` is ``[batch, seq, dim]`` and ``labels`` ``[batch, seq]`` aligned with the
    inputs (the shift by one happens here); ``-100`` marks positions without a label.
    ``head_frozen``: nothing inside ``to_logits`` needs a gradient (gradients then reach
    ``hidden`` only, taken chunk by chunk in forward); ``linear``: that frozen head as
    tensors (:func:`frozen_linear_head`), whose gradient is then taken in closed form.
    """
    h, y = labelled_positions(hidden, labels)
    n = int(y.numel())
    if head_frozen and torch.is_grad_enabled() and h.requires_grad and n:
        return _FrozenHeadLoss.apply(h, y, to_logits, chunk_tokens, linear), n
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk_tokens):
        hs, ys = h[start : start + chunk_tokens], y[start : start + chunk_tokens]
        if torch.is_grad_enabled() and hs.requires_grad:
            total = total + checkpoint(_chunk_loss, to_logits, hs, ys, use_reentrant=False)
        else:
            total = total + _chunk_loss(to_logits, hs, ys)
    return total, n
