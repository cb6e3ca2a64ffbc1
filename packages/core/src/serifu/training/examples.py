"""Turning dataset rows into token examples (``input_ids`` + ``labels``).

``lines``: the report's semantics, labels = input ids. ``dialogue``: the prompt is
rendered with the model's template (system prompt optional) and masked (-100); the loss
is on the reply and ``reply_end`` only. Prompt and reply are encoded separately, exactly
as inference feeds the prompt (:mod:`serifu.prompts.encode`: text from the data is plain
text, only the template's markup becomes control tokens), so the boundary tokens match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serifu.prompts.encode import encode_prompt, encode_reply

IGNORE = -100
_LINE = re.compile(r"^(?P<speaker>[^「]+)「(?P<text>.*)」$")


@dataclass(frozen=True)
class Example:
    """One tokenised training example."""

    input_ids: list[int]
    labels: list[int]
    augmented: bool = False  # a row written by knowledge augmentation (``source``)

    def __len__(self) -> int:
        return len(self.input_ids)


def context_history(context: Sequence[str], character: str) -> list[tuple[str, str]]:
    """(other's line, character's reply) pairs from ``話者「…」`` context lines, oldest first."""
    parsed = [m.groups() for line in context if (m := _LINE.match(line))]
    pairs = []
    for (spk_a, text_a), (spk_b, text_b) in zip(parsed, parsed[1:], strict=False):
        if spk_a != character and spk_b == character:
            pairs.append((text_a, text_b))
    return pairs


def _encode(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def encode_line(tokenizer: Any, text: str, *, add_special_tokens: bool, max_length: int) -> Example:
    ids = _encode(tokenizer, text, add_special_tokens)[:max_length]
    return Example(ids, list(ids))


def encode_dialogue(
    tokenizer: Any,
    template: Any,
    row: Mapping[str, Any],
    *,
    system: str | None,
    add_special_tokens: bool,
    max_length: int,
) -> Example:
    """Prompt tokens masked, reply + ``reply_end`` learned; the prompt is cut from the left."""
    character = row["character"]
    history = context_history(row.get("context") or [], character)
    prompt_ids = encode_prompt(
        tokenizer,
        template,
        row["query"],
        character=character,
        system=system,
        history=history,
        add_special_tokens=add_special_tokens,
    )
    reply_ids = encode_reply(tokenizer, row["reply"], template.reply_end)[:max_length]
    keep = max(0, max_length - len(reply_ids))
    prompt_ids = prompt_ids[max(0, len(prompt_ids) - keep) :] if keep else []
    return Example(prompt_ids + reply_ids, [IGNORE] * len(prompt_ids) + reply_ids)


def encode_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    fmt: str,
    tokenizer: Any,
    template: Any,
    system: str | None,
    add_special_tokens: bool,
    max_length: int,
) -> list[Example]:
    """Encode every row of one split; rows without any learnable token are dropped."""
    out = []
    for row in rows:
        if fmt == "lines":
            ex = encode_line(
                tokenizer, row["text"], add_special_tokens=add_special_tokens, max_length=max_length
            )
        else:
            ex = encode_dialogue(
                tokenizer,
                template,
                row,
                system=system,
                add_special_tokens=add_special_tokens,
                max_length=max_length,
            )
        if row.get("source") == "augmented":
            ex = Example(ex.input_ids, ex.labels, augmented=True)
        if sum(label != IGNORE for label in ex.labels[1:]) > 0:
            out.append(ex)
    return out
