"""Causal-LM loss computed only where there are labels, a chunk at a time.

The backbone's hidden states are projected through the output embedding only at
positions that have a label (masked prompts cost nothing), and in chunks that are
recomputed in backward, so a large vocabulary (Gemma: 262k) never materialises
``tokens x vocab`` float32 logits for a whole step.
"""

from __future__ import annotations

from typing import Any

CHUNK_BYTES = 2**28
"""Float32 logits alive at once in the loss (256 MiB)."""
MIN_CHUNK_TOKENS = 256
"""Fewest positions per loss chunk (a 262k vocabulary reaches it at 256 MiB)."""
FUSED_HEAD = True
"""Take a frozen head's gradient in forward (``serifu.accel.loss``); off only to measure it."""
CLOSED_FORM_HEAD = True
"""Take a frozen linear head's gradient in closed form (less memory); off only to measure it."""
LOSS_KERNEL_ATTR = "serifu_loss_kernel"
"""Set to ``"liger"`` on the ``*ForCausalLM`` (``train.loss_kernel``, :mod:`serifu.training.kernels`):
the loss then goes through Liger's fused linear cross-entropy."""


def loss_chunk_tokens(vocab: int) -> int:
    """Positions per loss chunk for a head of ``vocab`` outputs (``CHUNK_BYTES`` of float32
    logits, at least ``MIN_CHUNK_TOKENS``)."""
    return max(MIN_CHUNK_TOKENS, CHUNK_BYTES // (4 * vocab))


def causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` inside a PEFT wrapper (or the model itself)."""
    from serifu.modeling.unwrap import base_model_of

    return base_model_of(model)


def loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """(summed token NLL as a tensor, number of label tokens) for one batch."""
    from serifu.accel.loss import chunked_lm_loss, decoder_and_head, frozen_linear_head

    lm = causal_lm(model)
    decoder, to_logits, frozen = decoder_and_head(lm)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = decoder(**inputs, use_cache=False).last_hidden_state
    if lm.__dict__.get(LOSS_KERNEL_ATTR) == "liger":
        return liger_loss_sum(lm, hidden, batch["labels"])
    chunk = loss_chunk_tokens(int(lm.config.get_text_config().vocab_size))
    linear = frozen_linear_head(lm) if CLOSED_FORM_HEAD else None
    return chunked_lm_loss(
        hidden,
        batch["labels"],
        to_logits,
        chunk_tokens=chunk,
        head_frozen=frozen and FUSED_HEAD,
        linear=linear,
    )


def liger_loss_sum(lm: Any, hidden: Any, labels: Any) -> tuple[Any, int]:
    """:func:`loss_sum`'s result through Liger's fused linear cross-entropy (head matmul
    and cross-entropy in chunks, input gradient taken in forward), at labelled positions."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    from serifu.accel.loss import labelled_positions

    h, y = labelled_positions(hidden, labels)
    n = int(y.numel())
    if not n:
        return hidden.sum() * 0.0, 0
    softcap = getattr(lm.config, "final_logit_softcapping", None) or None
    loss = LigerFusedLinearCrossEntropyLoss(reduction="sum", softcap=softcap)
    return loss(lm.get_output_embeddings().weight, h, y).float(), n
