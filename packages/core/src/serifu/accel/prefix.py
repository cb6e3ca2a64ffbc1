"""Prompt-prefix KV cache: a heroine's system prompt is run once, not in every request.

Every chat request to a heroine starts with the same tokens (her card's system prompt, a
few hundred tokens); only the conversation after it changes. A static decoder that was told
which leading tokens a row shares with later requests (``spec = (key, length)``: ``key`` names
whatever else changes the keys and values, e.g. the row's LoRA adapter) keeps those tokens'
cached keys and values after the row's prompt pass; a later row with the same key and
leading tokens copies them into its cache slots and runs only the rest of its prompt
(:meth:`serifu.accel.decode.StaticDecoder.prefill_prefixed`). Keys are cached after the
rotary embedding, so a copied prefix is exact as long as the row's tokens keep their
positions and slots relative to each other (they do: the row stays contiguous).

The cache lives on the model (all its decoders share it) and is bounded in bytes, least
recently used first out.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from serifu.errors import SerifuError

MIN_PREFIX = 16
"""Shorter shared prefixes are not cached (copying costs about what running them does)."""


@dataclass
class Prefix:
    """One cached prefix: per cache layer, its keys and values ``[length, heads, dim]``."""

    key: Hashable
    tokens: tuple[int, ...]
    keys: list[Any]
    values: list[Any]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


class PrefixCache:
    """Cached prefixes by (key, tokens), at most ``max_bytes`` of keys and values."""

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Hashable, tuple[int, ...]], Prefix] = OrderedDict()
        self.nbytes = 0  # of the entries' keys and values
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def has(self, key: Hashable, tokens: Sequence[int]) -> bool:
        return (key, tuple(tokens)) in self._entries

    def find(self, key: Hashable, row: Sequence[int]) -> Prefix | None:
        """The longest cached prefix of ``row`` for ``key`` that leaves at least one token to
        run (the prompt pass needs the last token's logits)."""
        best: Prefix | None = None
        for (k, tokens), entry in self._entries.items():
            n = len(tokens)
            if k != key or n >= len(row) or (best is not None and n <= len(best.tokens)):
                continue
            if tuple(row[:n]) == tokens:
                best = entry
        if best is not None:
            self._entries.move_to_end((best.key, best.tokens))
        return best

    def add(self, prefix: Prefix) -> None:
        name = (prefix.key, prefix.tokens)
        old = self._entries.pop(name, None)
        self.nbytes += prefix.nbytes - (old.nbytes if old is not None else 0)
        self._entries[name] = prefix
        while len(self._entries) > 1 and self.nbytes > self.max_bytes:
            self.nbytes -= self._entries.popitem(last=False)[1].nbytes


def prefix_cache(model: Any) -> PrefixCache:
    """The model's prefix cache (made at first use; dropped with its static decoders)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    found = lm.__dict__.get("_serifu_prefixes")
    if found is None:
        found = lm.__dict__["_serifu_prefixes"] = PrefixCache()
    return found


def system_part(encode: Callable[[str], Sequence[int]]) -> tuple[list[int], int]:
    """A probe prompt and how many of its leading tokens every prompt shares: what two very
    different queries' prompts (``encode(query)``) have in common — the system prompt, as
    far as it does not depend on the query (retrieved examples, hints)."""
    try:
        probe, other = list(encode("おはよう")), list(encode("x"))
    except SerifuError:
        return [], 0
    return probe, shared_length(probe, other)


def spec_for(
    key: Hashable, prompt: Sequence[int], probe: Sequence[int], length: int
) -> tuple[Hashable, int] | None:
    """(key, n): ``prompt``'s first n tokens are the shared system part (None: too short)."""
    n = min(length, shared_length(prompt, probe))
    return (key, n) if n >= MIN_PREFIX else None


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` have in common."""
    return len(os.path.commonprefix([list(a), list(b)]))
