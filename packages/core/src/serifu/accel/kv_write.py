"""The reply step's new key and value written into the static cache by the attention kernel.

In a compiled reply step, transformers' ``StaticLayer.update`` costs each layer three small
kernels besides attention: the key written into the cache (inductor fuses it with the rotary
embedding), the value written, and the length advanced (stablelm-beta-7b, session 35's profile
on an H100: 34 and 37 µs a token for the last two, plus their gaps in the step's graph). Here a
layer's one-token update writes no key or value: it advances the length, returns the cache and
leaves itself with the new key and value in the attention call's keyword arguments
(transformers passes one dict to both, ``kwargs=kwargs``); then
:func:`serifu.accel.split_kv.attention_forward` hands them to the split-key kernel: the
program whose chunk holds the length less one scores them from registers after its loop and
stores them there. The value's write goes, and the key's leaves the rotary kernel.

The length stays advanced by the update, in the traced step: when the kernel advanced it,
inductor recomputed a later layer's causal mask from the advanced length (a CPU test, with the
decoder's own mask opened, catches it). With ``shared`` (``SERIFU_DECODE_SHARED_LENGTH=1`` as
well) every layer reads one length, which a step's first layer advances: one add a step, not
one a layer.

Only where the model's attention runs :mod:`serifu.accel.split_kv` (the decoder checks), for
one-token passes of up to ``split_kv.MAX_ROWS`` rows; prompts, batches and models whose
attention does not pass its keyword arguments to the cache (GPT-NeoX) update as before.
Attention that does not take the kernel's path (a single split, soft caps) writes the pending
key and value first (:func:`write_pending`). Opt-in (``SERIFU_DECODE_KV_WRITE=1``,
``StaticDecoder(kv_write=True)``; session 36). Session 37, one H100, with the shared length:
stablelm-beta-7b +1.8 % in fresh processes (three rounds); gemma-3-270m -0.2 / -1.1 %, whose
compiled step already wrote the key and value inside its rotary kernels; GPT-J untimed.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

PENDING = "serifu_kv_pending"
"""The keyword a deferring layer puts itself under in the attention call's arguments."""


@functools.cache
def layer_class(shared: bool = False) -> type:
    """The deferring layer class (made once per kind, on transformers' ``StaticLayer``;
    ``shared``: on :mod:`serifu.accel.shared_length`'s layer, one length for every layer)."""
    from transformers.cache_utils import StaticLayer

    from serifu.accel import split_kv
    from serifu.accel.shared_length import layer_class as shared_layer

    base: type = shared_layer() if shared else StaticLayer

    class DeferredWriteLayer(base):
        """A static layer whose one-token updates leave the write to the attention kernel.
        With one shared length, the first layer advances it in such a pass (every kernel then
        writes at the length less one), the last layer in any other (as shared_length's)."""

        first = False

        def defers_step(self, rows: int, tokens: int) -> bool:
            """Whether a pass of ``rows`` x ``tokens`` new keys (called with the attention's
            keyword arguments) leaves its write to the kernel (:mod:`serifu.accel.rope_fold`
            asks before it computes them)."""
            return (
                self.is_initialized
                and self.max_cache_len > 1
                and tokens == 1
                and rows <= split_kv.MAX_ROWS
            )

        def update(
            self,
            key_states: torch.Tensor,
            value_states: torch.Tensor,
            *args: Any,
            kwargs: dict[str, Any] | None = None,
            **rest: Any,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            rows, tokens = key_states.shape[0], key_states.shape[-2]  # [B, Hkv, S, D]
            if not (isinstance(kwargs, dict) and self.defers_step(rows, tokens)):
                return super().update(key_states, value_states, *args, kwargs=kwargs, **rest)
            kwargs[PENDING] = (self, key_states, value_states)
            # advanced here, in the traced step: the kernel reads it, and a length the kernel
            # advanced was read again afterwards by inductor's recomputed causal mask (CPU test)
            if self.first or not shared:
                self.cumulative_length.add_(1)
            keys, values = self.keys, self.values
            assert keys is not None and values is not None  # initialised (checked above)
            return keys, values

    return DeferredWriteLayer


def defer_writes(cache: Any, shared: bool = False) -> int:
    """Replaces a static cache's not yet initialised full static layers by deferring ones
    (``shared``: on one length, :func:`layer_class`); returns how many (0: left as it was,
    e.g. a layer of another kind or holding keys)."""
    from serifu.accel.shared_length import Length, replace_static_layers

    cls, length = layer_class(shared), Length()
    last = len(getattr(cache, "layers", [])) - 1

    def make(i: int, max_cache_len: int) -> Any:
        kw = {"length": length, "last": i == last} if shared else {}
        layer = cls(max_cache_len=max_cache_len, **kw)
        layer.first = i == 0
        return layer

    return replace_static_layers(cache, cls, make)


def write_at_length(
    keys: torch.Tensor, values: torch.Tensor, length: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> None:
    """``k``/``v`` written into ``keys``/``values`` where ``StaticLayer.update`` would have
    written them: at the length (advanced by the update) less one."""
    position = length.view(1) - 1
    keys.index_copy_(2, position, k)
    values.index_copy_(2, position, v)


def write_pending(pending: tuple[Any, torch.Tensor, torch.Tensor]) -> None:
    """A deferred key and value written by PyTorch: attention that does not run the kernel."""
    layer, key_states, value_states = pending
    write_at_length(layer.keys, layer.values, layer.cumulative_length, key_states, value_states)
