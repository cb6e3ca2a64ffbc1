"""Encoding a rendered prompt so that only the template's own markup becomes control tokens.

A template renders user text, history and the card's system prompt into one string. Tokenised
as a whole, a user typing ``<end_of_turn>`` would produce Gemma's real end-of-turn token. Here
every piece of text that came from outside the template is encoded with
``split_special_tokens=True`` (as plain characters), the template's markup without it.
Training (:mod:`serifu.training.examples`) and inference use the same function, so the
tokens a model learns on are the tokens it is prompted with.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any

_SLOT = "\x00{}\x00"
_SLOT_RE = re.compile("\x00(\\d+)\x00")


def _plain(tokenizer: Any, text: str) -> list[int]:
    try:
        ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    except TypeError:  # a slow tokenizer without the option: remove the control strings
        ids = tokenizer(neutralise(tokenizer, text), add_special_tokens=False)["input_ids"]
    return [int(i) for i in ids]


def _markup(tokenizer: Any, text: str, first: bool, add_special_tokens: bool) -> list[int]:
    ids = tokenizer(text, add_special_tokens=first and add_special_tokens)["input_ids"]
    return [int(i) for i in ids]


def encode_rendered(
    tokenizer: Any, rendered: str, values: Sequence[str], *, add_special_tokens: bool
) -> list[int]:
    """Encode ``rendered`` whose external texts were replaced by slots ``\\x00i\\x00``."""
    ids: list[int] = []
    pos = 0
    first = True
    for match in _SLOT_RE.finditer(rendered):
        if match.start() > pos:
            ids += _markup(tokenizer, rendered[pos : match.start()], first, add_special_tokens)
        elif first and add_special_tokens:
            ids += _markup(tokenizer, "", True, True)
        first = False
        ids += _plain(tokenizer, values[int(match.group(1))])
        pos = match.end()
    if pos < len(rendered) or first:
        ids += _markup(tokenizer, rendered[pos:], first, add_special_tokens)
    return ids


def _segmentable(tokenizer: Any) -> bool:
    """True when encoding pieces apart gives the same ids as encoding them together (no
    sentencepiece dummy prefix at each piece), so the slot-by-slot encoding is exact."""
    cached = getattr(tokenizer, "_serifu_segmentable", None)
    if cached is None:
        whole = _plain(tokenizer, "。い")
        cached = whole == _plain(tokenizer, "。") + _plain(tokenizer, "い")
        with contextlib.suppress(AttributeError):
            tokenizer._serifu_segmentable = cached
    return bool(cached)


def neutralise(tokenizer: Any, text: str) -> str:
    """``text`` without the tokenizer's control strings (``<end_of_turn>`` …)."""
    for token in sorted(tokenizer.all_special_tokens, key=len, reverse=True):
        if token and len(token) > 1:
            text = text.replace(token, "")
    return text


def encode_prompt(
    tokenizer: Any,
    template: Any,
    query: str,
    *,
    character: str,
    system: str | None = None,
    history: Sequence[tuple[str, str]] = (),
    add_special_tokens: bool = True,
) -> list[int]:
    """Token ids of ``template.render(...)`` with query, history and system encoded as plain text."""
    if not _segmentable(tokenizer):  # e.g. sentencepiece with a dummy prefix: encode whole
        clean = [(neutralise(tokenizer, u), neutralise(tokenizer, r)) for u, r in history]
        rendered = template.render(
            neutralise(tokenizer, query),
            character=character,
            system=neutralise(tokenizer, system) if system else None,
            history=clean,
        )
        return _markup(tokenizer, rendered, True, add_special_tokens)
    values: list[str] = []

    def slot(text: str) -> str:
        values.append(text)
        return _SLOT.format(len(values) - 1)

    rendered = template.render(
        slot(query),
        character=character,
        system=slot(system) if system else None,
        history=[(slot(u), slot(r)) for u, r in history],
    )
    return encode_rendered(tokenizer, rendered, values, add_special_tokens=add_special_tokens)


def encode_reply(tokenizer: Any, reply: str, reply_end: str) -> list[int]:
    """A training target: the reply as plain text, then ``reply_end`` with its control tokens."""
    if not _segmentable(tokenizer):
        return _markup(tokenizer, neutralise(tokenizer, reply) + reply_end, False, False)
    return _plain(tokenizer, reply) + _markup(tokenizer, reply_end, False, False)
