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

from collections.abc import Iterable, Sequence
from typing import Any

from serifu.training.batches import lay_out_row
from serifu.training.examples import IGNORE, Example

MIN_SHARED = 32
"""Shorter common prefixes are not shared (a step then packs its examples as usual)."""
ROW_TOKENS = 4096
"""Longest shared row as run: attention over a row is a dense mask, quadratic in its length."""


def wanted(config: Any) -> bool:
    """Whether ``config`` asks packed rows to share prefixes (``train.shared_prefix``
    'auto', packing, and Serifu's attention, whose mask it needs: not 'sdpa')."""
    return bool(config.packing and config.shared_prefix == "auto" and config.attention != "sdpa")


def counted_shared(config: Any, model: Any, device: str) -> bool:
    """Whether the memory policy sizes a step with its prefix once a row: :func:`wanted`, and
    no captured step (that one packs whole rows itself; ``capture = "auto"`` counts as
    captured wherever it may run, since it is decided after checkpointing)."""
    from serifu.training.capture import auto_blocker

    captured = config.capture == "on" or (
        config.capture == "auto" and auto_blocker(model, device) is None
    )
    return wanted(config) and not captured


def shared_length(examples: Sequence[Example]) -> int:
    """Tokens every example starts with, ending before the first learned token of any of
    them and before each one's last token; 0 for fewer than two examples. (Lists are
    compared in C: the common prefix of all is that of the least and the greatest.)"""
    if len(examples) < 2:
        return 0
    ids = [ex.input_ids for ex in examples]
    lo, hi = min(ids), max(ids)
    n = next((i for i, (a, b) in enumerate(zip(lo, hi, strict=False)) if a != b), len(lo))
    n = min(n, min(len(ex) for ex in examples) - 1)
    for ex in examples:  # the token before a label predicts it: it stays the example's own
        if ex.labels[: n + 1].count(IGNORE) != n + 1:
            n = next(i for i, y in enumerate(ex.labels) if y != IGNORE) - 1
    return max(n, 0)


def _layout(
    examples: Sequence[Example], prefix: int, row_tokens: int
) -> tuple[list[int], list[list[int]], int]:
    """The shared rows of ``examples``: each one's suffix length, the examples of each row
    (:func:`_rows`), and the rows' width (the fullest row)."""
    suffixes = [len(ex) - prefix for ex in examples]
    rows = _rows(suffixes, prefix, row_tokens)
    return suffixes, rows, max(prefix + sum(suffixes[i] for i in row) for row in rows)


def _run(examples: Sequence[Example], prefix: int, row_tokens: int) -> int:
    """Tokens the shared rows of ``examples`` run: rows x their width."""
    _, rows, width = _layout(examples, prefix, row_tokens)
    return len(rows) * width


def prefix_to_share(examples: Sequence[Example], row_tokens: int = ROW_TOKENS) -> int:
    """The prefix a micro-batch's rows share: :func:`shared_length` when it is at least
    ``MIN_SHARED`` tokens and the shared rows run fewer tokens than the examples have;
    else 0 (pack them whole)."""
    prefix = shared_length(examples)
    if prefix < MIN_SHARED:
        return 0
    return prefix if _run(examples, prefix, row_tokens) < sum(map(len, examples)) else 0


def run_tokens(examples: Sequence[Example], share: bool, row_tokens: int = ROW_TOKENS) -> int:
    """Tokens a micro-batch of ``examples`` runs as packed rows: all of theirs, or with
    ``share`` the shared rows' (collate's rule: :func:`prefix_to_share`)."""
    prefix = prefix_to_share(examples, row_tokens) if share else 0
    return _run(examples, prefix, row_tokens) if prefix else sum(map(len, examples))


def most_run_tokens(micro_batches: Iterable[Sequence[Example]], share: bool) -> int:
    """The most tokens any of ``micro_batches`` runs (:func:`run_tokens`): the step the
    memory policy sizes (:func:`serifu.training.memory_policy.choose_checkpointing`)."""
    return max(run_tokens(examples, share) for examples in micro_batches)


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

    suffixes, rows, width = _layout(examples, prefix, row_tokens)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.zeros((len(rows), width), dtype=torch.long)
    head = Example(examples[0].input_ids[:prefix], [IGNORE] * prefix)
    for r, row in enumerate(rows):
        # the prefix and each suffix as packing's blocks (each block's first label masked: a
        # suffix's first token is predicted from the prefix's end, not the row's previous
        # token), then positions continued from the prefix and the blocks' segment ids
        blocks = [
            head,
            *(Example(examples[i].input_ids[prefix:], examples[i].labels[prefix:]) for i in row),
        ]
        used = prefix + sum(suffixes[i] for i in row)
        pads = [width - used] if width > used else []  # the unused end: a segment of its own
        ids[r], labels[r], positions[r], _ = lay_out_row(blocks, pads)
        positions[r, prefix:used] += prefix
        sizes = torch.tensor([len(b) for b in blocks] + pads)
        segments[r] = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    return {
        "input_ids": ids,
        "position_ids": positions,
        "labels": labels,
        "serifu_segments": segments,
        "serifu_positions": positions,
    }
