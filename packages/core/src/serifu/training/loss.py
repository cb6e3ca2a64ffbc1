"""Causal-LM loss computed only where there are labels.

The backbone's hidden states are projected through the output embedding only at
positions that have a label, so masked prompts and a large vocabulary (Gemma: 262k)
cost nothing for the tokens that are not learned.
"""

from __future__ import annotations

from typing import Any

from serifu.training.examples import IGNORE


def causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """(summed token NLL as a tensor, number of label tokens) for one batch."""
    import torch.nn.functional as F

    lm = causal_lm(model)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    hidden = lm.base_model(**inputs, use_cache=False).last_hidden_state
    labels = batch["labels"][:, 1:]
    selected = labels != IGNORE
    logits = lm.get_output_embeddings()(hidden[:, :-1][selected]).float()
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    if softcap:
        logits = (logits / softcap).tanh() * softcap
    total = F.cross_entropy(logits, labels[selected], reduction="sum")
    return total, int(selected.sum())
