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
FUSED_HEAD = True
"""Take a frozen head's gradient in forward (``serifu.accel.loss``); off only to measure it."""


def causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` inside a PEFT wrapper (or the model itself)."""
    from serifu.modeling.unwrap import base_model_of

    return base_model_of(model)


def loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """(summed token NLL as a tensor, number of label tokens) for one batch."""
    from serifu.accel.loss import chunked_lm_loss, decoder_and_head

    decoder, to_logits, frozen = decoder_and_head(causal_lm(model))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = decoder(**inputs, use_cache=False).last_hidden_state
    vocab = int(causal_lm(model).config.get_text_config().vocab_size)
    chunk = max(256, CHUNK_BYTES // (4 * vocab))
    return chunked_lm_loss(
        hidden, batch["labels"], to_logits, chunk_tokens=chunk, head_frozen=frozen and FUSED_HEAD
    )
