"""Packed rows whose examples share a prompt prefix run that prefix once per row.

Every ``dialogue`` example of one heroine starts with the same tokens: the template's
opening and her card's system prompt (~300 of an example's ~330 tokens with Gemma's
tokenizer on the sample cast; the loss is on the reply only). A padding-free step runs
those tokens again for every example. Here a packed row holds the shared prefix once, then
each example's own tokens (its *suffix*); a suffix attends to the prefix and causally to
itself, never to another suffix, and its positions continue from the prefix's, so every
suffix token sees exactly the keys and positions it sees in its own row. The loss is the
same sum over the same labels, and the prefix's gradient is the sum of what every example
sends it: the same gradient, up to float rounding (with LoRA dropout, a row's examples share
the prefix's dropout mask instead of drawing one each).

The prefix ends before the first token that any example learns, and before each example's
last token, so every suffix holds all of its example's labels. Rows are bounded by
``row_tokens`` tokens as run (the prefix counted once per row). Segment ids (0 = the
prefix, 1… = the suffixes, a row's unused end a segment of its own) and position ids travel
with the batch as ``serifu_segments`` / ``serifu_positions``; the attention builds its mask
from them (:func:`serifu.accel.varlen.segment_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from serifu.training.examples import IGNORE, Example

MIN_SHARED = 32
"""Shorter common prefixes are not shared (a step then packs its examples as usual)."""
ROW_TOKENS = 4096
"""Longest shared row as run: attention over a row is a dense mask, quadratic in its length."""


def shared_length(examples: Sequence[Example]) -> int:
    """Tokens every example starts with, ending before the first learned token of any of
    them and before each one's last token; 0 for fewer than two examples."""
    if len(examples) < 2:
        return 0
    first = examples[0].input_ids
    limit = min(len(ex) - 1 for ex in examples)
    for ex in examples:
        learned = next((i for i, y in enumerate(ex.labels) if y != IGNORE), len(ex))
        limit = min(limit, learned - 1)  # the token before a label predicts it: its own
    n = 0
    while n < limit and all(ex.input_ids[n] == first[n] for ex in examples):
        n += 1
    return n


def _rows(suffixes: Sequence[int], prefix: int, row_tokens: int) -> list[list[int]]:
    """Indices of the examples in each row: in order, a row's prefix and suffixes within
    ``row_tokens`` (a suffix too long for any row gets a row of its own)."""
    rows: list[list[int]] = []
    width = 0
    for i, n in enumerate(suffixes):
        if rows and width + n <= row_tokens:
            rows[-1].append(i)
            width += n
        else:
            rows.append([i])
            width = prefix + n
    return rows


def pack_shared(
    examples: Sequence[Example], prefix: int, row_tokens: int = ROW_TOKENS
) -> dict[str, Any]:
    """Rows of ``[prefix, suffix 1, suffix 2, …]`` for examples sharing their first
    ``prefix`` tokens (:func:`shared_length`): ``input_ids``, ``labels``, ``position_ids``
    and the attention's ``serifu_segments`` / ``serifu_positions``."""
    import torch

    suffixes = [len(ex) - prefix for ex in examples]
    rows = _rows(suffixes, prefix, row_tokens)
    width = max(prefix + sum(suffixes[i] for i in row) for row in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.zeros((len(rows), width), dtype=torch.long)
    head = torch.tensor(examples[0].input_ids[:prefix])
    for r, row in enumerate(rows):
        ids[r, :prefix] = head
        positions[r, :prefix] = torch.arange(prefix)
        at = prefix
        for s, i in enumerate(row, start=1):
            ex, n = examples[i], suffixes[i]
            ids[r, at : at + n] = torch.tensor(ex.input_ids[prefix:])
            labels[r, at : at + n] = torch.tensor(ex.labels[prefix:])
            labels[r, at] = IGNORE  # predicted from the prefix's end, not this row's previous token
            positions[r, at : at + n] = torch.arange(prefix, prefix + n)
            segments[r, at : at + n] = s
            at += n
        if at < width:  # the unused end: a segment of its own, no labels
            positions[r, at:] = torch.arange(width - at)
            segments[r, at:] = len(row) + 1
    return {
        "input_ids": ids,
        "position_ids": positions,
        "labels": labels,
        "serifu_segments": segments,
        "serifu_positions": positions,
    }
