"""Incremental detokenization: the text of a growing reply without decoding it all each step.

:class:`IncrementalText` gives exactly ``tokenizer.decode(ids)`` for ids that grow one step
at a time, decoding only the tokens since a checkpoint plus a few before it (as HF's
``TextStreamer`` and vLLM's detokenizer do). A checkpoint ``p`` is taken only where the text
of ``ids[:p]`` is final whatever follows: it does not end in U+FFFD (an unfinished UTF-8
character) and token ``p - 1`` is not a byte-fallback piece (``<0xE3>``: SentencePiece
fuses a run of them, all or nothing). The lookback tokens absorb decoders that treat the
first token specially (a leading space stripped); when the window's text does not start with
the lookback's text, the whole reply is decoded. Tokenizers that clean up spaces after
decoding (or are not HF fast tokenizers) are always decoded whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

LOOKBACK = 4
"""Tokens before the checkpoint decoded with the new ones."""
EVERY = 8
"""New tokens after which the checkpoint moves up (where it is safe)."""
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


class Detokenizer:
    """One tokenizer's decode, and which of its tokens are byte-fallback pieces (cached)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "_tokenizer", None)
        cleanup = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
        self.incremental = backend is not None and not cleanup and hasattr(backend, "decode")
        self._backend = backend
        self._bytes: dict[int, bool] = {}

    def full(self, ids: Sequence[int]) -> str:
        """``tokenizer.decode(ids, skip_special_tokens=False)``."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))

    def window(self, ids: Sequence[int]) -> str:
        """The same decode, straight from the fast backend (no list conversion per call)."""
        assert self._backend is not None
        return str(self._backend.decode(list(ids), skip_special_tokens=False))

    def byte_piece(self, token: int) -> bool:
        if token not in self._bytes:
            piece = self.tokenizer.convert_ids_to_tokens(int(token))
            self._bytes[token] = isinstance(piece, str) and bool(_BYTE_PIECE.fullmatch(piece))
        return self._bytes[token]

    def text(self) -> IncrementalText:
        return IncrementalText(self)


class IncrementalText:
    """``decode(ids)`` of one growing row (call it with the row's ids after each step)."""

    def __init__(self, detok: Detokenizer):
        self.detok = detok
        self.anchor = -1  # ids[p - 1]: the row still grows from the checkpoint
        self.p = 0  # checkpoint: tokens whose text is final
        self.start = 0  # window start: p - LOOKBACK
        self.final = ""  # decode(ids[:p])
        self.head = ""  # decode(ids[start:p])

    def __call__(self, ids: Sequence[int]) -> str:
        d = self.detok
        n = len(ids)
        if not d.incremental:
            return d.full(ids)
        if self.p and (n < self.p or ids[self.p - 1] != self.anchor):  # not the same row
            self.p = self.start = 0
            self.final = self.head = ""
        window = d.window(ids[self.start :])
        if not self.p:
            text = window
        elif window.startswith(self.head):
            text = self.final + window[len(self.head) :]
        else:  # the lookback's text changed: decode it all
            text = d.full(ids)
        if n - self.p >= EVERY and self._safe(ids, text):
            self.p, self.final, self.anchor = n, text, int(ids[-1])
            self.start = max(0, n - LOOKBACK)
            self.head = d.window(ids[self.start : n]) if self.start else text
        return text

    def _safe(self, ids: Sequence[int], text: str) -> bool:
        return bool(ids) and not text.endswith("\ufffd") and not self.detok.byte_piece(ids[-1])


def texts(tokenizer: Any, rows: int) -> list[IncrementalText]:
    """One incremental text per row, sharing one detokenizer."""
    detok = Detokenizer(tokenizer)
    return [detok.text() for _ in range(rows)]
