"""One write position for every layer of a static KV cache, advanced once a pass.

transformers' ``StaticLayer`` keeps its own length tensor and advances it in every ``update``
(``cumulative_length.add_``): a 32-layer model's reply step runs 32 one-element kernels that
all compute the same number, each with its gap in the step's graph (stablelm-beta-7b, session
33's profile on an H100: 37 µs a token plus the gaps; ~1.2 µs a kernel, more on gemma-3-270m's
short step). :func:`share_length` makes every layer of a cache read one length tensor and only
the last layer of a pass advance it (after each layer before it has taken its write position
from it), so a step advances it once.

Every layer updates once per forward pass (the decoder's caches hold full static layers only,
:func:`serifu.accel.decode._unslide`), in order, so the last layer sees the same position as
the first. Cropping moves the length once (the last layer's crop); resets, fills and copies of
the one tensor act as they did on each. Opt-in (``SERIFU_DECODE_SHARED_LENGTH=1``,
``StaticDecoder(shared_length=True)``; session 34): timed in session 35 on an H100, it did not
help (stablelm-beta-7b +0.4 / +0.8 %, within order noise; gemma-3-270m -2.0 / -3.0 %).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


class Length:
    """The one length tensor a cache's layers share (set by the first layer initialised)."""

    def __init__(self) -> None:
        self.tensor: torch.Tensor | None = None


@functools.cache
def layer_class() -> type:
    """The shared-length layer class (made once, on transformers' ``StaticLayer``)."""
    from transformers.cache_utils import StaticLayer

    class SharedLengthLayer(StaticLayer):
        """A ``StaticLayer`` on its cache's shared length; ``last``: the layer that advances it."""

        def __init__(self, max_cache_len: int, length: Length, last: bool) -> None:
            super().__init__(max_cache_len=max_cache_len)
            self.length, self.last = length, last

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            super().lazy_initialization(key_states, value_states)
            if self.length.tensor is None or self.length.tensor.device != self.device:
                self.length.tensor = self.cumulative_length  # static address marked by super
            self.cumulative_length = self.length.tensor

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            """``StaticLayer.update``, the length advanced by the last layer only."""
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            kv_length = key_states.shape[-2]
            cache_position = torch.arange(kv_length, device=self.device) + self.cumulative_length
            if self.last:  # every layer before took its position from the same length
                self.cumulative_length.add_(kv_length)
            keys, values = self.keys, self.values
            assert keys is not None and values is not None  # initialised above
            keys.index_copy_(2, cache_position, key_states)
            values.index_copy_(2, cache_position, value_states)
            return keys, values

        def crop(self, tokens_to_remove: int) -> None:
            if self.last:  # the one length moves once
                super().crop(tokens_to_remove)

    return SharedLengthLayer


def replace_static_layers(cache: Any, cls: type, make: Callable[[int, int], Any]) -> int:
    """Replaces a static cache's not yet initialised full static layers by ``make(i,
    max_cache_len)`` each; returns how many layers there are of ``cls`` then (0: left as it
    was, e.g. a layer of another kind, or one already holding keys)."""
    from transformers.cache_utils import StaticLayer

    layers = list(getattr(cache, "layers", []))
    if layers and all(isinstance(x, cls) for x in layers):  # replaced already
        return len(layers)
    if not layers or not all(type(x) is StaticLayer and not x.is_initialized for x in layers):
        return 0
    for i, layer in enumerate(layers):
        cache.layers[i] = make(i, layer.max_cache_len)
    return len(layers)


def share_length(cache: Any) -> int:
    """Replaces a static cache's not yet initialised full static layers by layers on one
    shared length (the last advancing it); returns how many layers share it (0: left as it
    was, e.g. a layer of another kind, or one already holding keys)."""
    cls, length = layer_class(), Length()
    last = len(getattr(cache, "layers", [])) - 1
    return replace_static_layers(
        cache, cls, lambda i, n: cls(max_cache_len=n, length=length, last=i == last)
    )


def lengths(cache: Any) -> list[torch.Tensor]:
    """The cache's initialised length tensors, each once (shared layers: one)."""
    seen: dict[int, torch.Tensor] = {}
    for layer in cache.layers:
        t = getattr(layer, "cumulative_length", None)
        if getattr(layer, "is_initialized", False) and isinstance(t, torch.Tensor):
            seen.setdefault(id(t), t)
    return list(seen.values())
