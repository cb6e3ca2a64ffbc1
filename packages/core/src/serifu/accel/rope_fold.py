"""A Llama attention's rotary embedding applied inside the split-key kernel, in the one-token
steps whose key and value that kernel writes (:mod:`serifu.accel.kv_write`).

In stablelm-beta-7b's compiled step the rotary embedding of the query and the new key is an
inductor kernel of its own in every layer (with the key's cache write it was the largest
kernel besides the GEMVs and attention: 53 µs a token in session 33's profile, an H200; with
``kv_write`` the write leaves it, the kernel stays). Here :class:`RopeAttention`, in such a
step, hands the attention the unrotated query and key and the step's cos and sin (under
:data:`ROPE` in the attention call's keyword arguments); the kernel rotates both in registers
before scoring, rounds them to the model's dtype as inductor's rotary kernel does, and stores
the rotated key. A pass the kernel does not take is rotated in PyTorch as the model would
have (:func:`rotate`), before anything is written; any other pass runs the layer's own forward.

Only Llama's attention (:data:`ROPE_ATTENTION`: ``rotate_half`` over the whole head). GPT-J
rotates interleaved pairs of part of its head, GPT-NeoX part of it, and Gemma 3 normalises
its query and key first, in the same inductor kernel as their rotation. Opt-in, with
``kv_write``: ``SERIFU_DECODE_KV_ROPE=1`` or ``StaticDecoder(kv_rope=True)`` (session 38).
"""

from __future__ import annotations

from typing import Any

import torch

from serifu.accel.gemv import swap_back, swap_whitelisted

ROPE = "serifu_kv_rope"
"""The keyword under which the attention call gets the step's (cos, sin) for an unrotated
query and key."""

ROPE_ATTENTION = ("LlamaAttention",)
"""Attention modules whose forward is Llama's: ``q_proj``/``k_proj``/``v_proj``, the rotary
embedding over the whole head (``apply_rotary_pos_emb``), the cache's update, the attention
function, ``o_proj``."""


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x`` [B, H, S, D] rotated by ``cos``/``sin`` [B, S, D]: Llama's
    ``apply_rotary_pos_emb`` for one tensor, the same operations in the same order."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    half = x.shape[-1] // 2
    return (x * cos) + (torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin)


def _defers(cache: Any, index: int, hidden_states: torch.Tensor) -> bool:
    """Whether layer ``index`` of ``cache`` will leave the write of this pass's key and value
    to the kernel (``kv_write``'s layers say, from the pass's rows and tokens)."""
    layers = getattr(cache, "layers", None)
    if layers is None or index >= len(layers):
        return False
    check = getattr(layers[index], "defers_step", None)
    rows, tokens = hidden_states.shape[0], hidden_states.shape[-2]
    return bool(check is not None and check(rows, tokens))


class RopeAttention(torch.nn.Module):
    """An attention module (:data:`ROPE_ATTENTION`) whose one-token steps into a deferring
    cache layer leave the rotary embedding to the attention kernel."""

    unfolded: Any  # the module's own class

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        module: Any = self
        shape = (*hidden_states.shape[:-1], -1, module.head_dim)
        if (
            position_embeddings is None
            or hidden_states.shape[-2] != 1
            or torch.is_grad_enabled()
            or position_embeddings[0].shape[-1] != module.head_dim
            or not _defers(cache, module.layer_idx, hidden_states)
        ):
            return self._own(hidden_states, position_embeddings, attention_mask, cache, kwargs)
        # in the forward's order: a fused q/k/v GEMV runs on q_proj's call (gemv_fuse)
        query_states = module.q_proj(hidden_states).view(shape).transpose(1, 2)
        key_states = module.k_proj(hidden_states).view(shape).transpose(1, 2)
        value_states = module.v_proj(hidden_states).view(shape).transpose(1, 2)
        kwargs[ROPE] = position_embeddings  # (cos, sin): the attention rotates
        keys, values = cache.update(key_states, value_states, module.layer_idx, kwargs=kwargs)
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        attention = ALL_ATTENTION_FUNCTIONS[module.config._attn_implementation]
        out, weights = attention(
            module,
            query_states,
            keys,
            values,
            attention_mask,
            dropout=0.0,
            scaling=module.scaling,
            **kwargs,
        )
        out = out.reshape(*hidden_states.shape[:-1], -1).contiguous()
        return module.o_proj(out), weights

    def _own(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: Any,
        attention_mask: Any,
        cache: Any,
        kwargs: dict[str, Any],
    ) -> tuple[torch.Tensor, Any]:
        if cache is not None:  # (else a caller's older name for it, if any, stays in kwargs)
            kwargs["cache"] = cache
        out: tuple[torch.Tensor, Any] = self.unfolded.forward(
            self,
            hidden_states,
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            **kwargs,
        )
        return out


def _llama_like(module: Any) -> bool:
    return all(hasattr(module, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim"))


def fold_rope(model: Any) -> int:
    """Swaps the model's whitelisted attention modules to :class:`RopeAttention`; returns how
    many now leave their rotary embedding to the kernel in deferred steps (an earlier call's
    included). It changes nothing where the cache does not defer its writes."""
    return swap_whitelisted(model, RopeAttention, ROPE_ATTENTION, _llama_like)


def drop_rope(model: Any) -> None:
    """Attention modules back to their own classes."""
    swap_back(model, RopeAttention)
