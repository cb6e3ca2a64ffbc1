"""Batch planning and collation: padded batches, or padding-free packed rows.

A *plan* is the list of example indices of each step, fixed by (seed, epoch), so a
resumed run sees exactly the same data order. With ``max_tokens`` a step takes examples
until the token budget is reached (natural for packing); otherwise ``batch_size`` of them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from serifu.training.examples import IGNORE, Example


def plan_epoch(
    lengths: Sequence[int], *, batch_size: int, max_tokens: int | None, seed: int, epoch: int
) -> list[list[int]]:
    """Shuffled steps of one epoch; the last step may be smaller."""
    order = list(range(len(lengths)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    steps: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for i in order:
        full = (
            tokens + lengths[i] > max_tokens
            if max_tokens is not None
            else len(current) >= batch_size
        )
        if current and full:
            steps.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += lengths[i]
    if current:
        steps.append(current)
    return steps


def pad_batch(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (padding masked)."""
    import torch

    width = max(len(ex) for ex in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        n = len(ex)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack_rows(examples: Sequence[Example], row_tokens: int | None) -> list[list[Example]]:
    """Group examples (in order) into rows of at most ``row_tokens`` tokens; a longer
    example gets a row of its own. ``None``: everything in one row."""
    rows: list[list[Example]] = []
    width = 0
    for ex in examples:
        if rows and (row_tokens is None or width + len(ex) <= row_tokens):
            rows[-1].append(ex)
            width += len(ex)
        else:
            rows.append([ex])
            width = len(ex)
    return rows


def lay_out_row(examples: Sequence[Example], pads: Sequence[int]) -> tuple[Any, Any, Any, Any]:
    """One packed row, built with whole-row tensor operations (no per-example tensors: the
    host time of a launch-bound step): ``examples`` one after another, then label-less
    padding blocks of ``pads`` tokens. Returns (ids, labels with each example's first label
    masked, positions restarting at every example and block, the blocks' start offsets)."""
    import torch

    blocks = torch.tensor([len(ex) for ex in examples] + list(pads))
    width, used = int(blocks.sum()), sum(len(ex) for ex in examples)
    ids = torch.zeros(width, dtype=torch.long)
    labels = torch.full((width,), IGNORE, dtype=torch.long)
    ids[:used] = torch.tensor([t for ex in examples for t in ex.input_ids])
    labels[:used] = torch.tensor([t for ex in examples for t in ex.labels])
    starts = torch.cumsum(blocks, 0) - blocks
    labels[starts[: len(examples)]] = IGNORE  # no token is predicted from the example before
    positions = torch.arange(width) - torch.repeat_interleave(starts, blocks)
    return ids, labels, positions, starts


def pack_batch(examples: Sequence[Example], row_tokens: int | None = None) -> dict[str, Any]:
    """Padding-free rows: ``position_ids`` restart at 0 for each example.

    ``transformers`` turns restarting position ids into a block-diagonal causal mask
    (no attention across examples) when ``attention_mask`` is None. The first label of
    each example is masked so no token is predicted from the previous example. Rows are
    bounded by ``row_tokens`` (attention over a packed row is quadratic in its length);
    the few tokens that even out the rows' ends are a block of their own, without labels.
    The examples' boundaries also travel as ``cu_seq_lens_*``/``max_length_*`` for
    variable-length attention (:mod:`serifu.accel.varlen`); SDPA models ignore them.
    """
    import torch

    rows = pack_rows(examples, row_tokens)
    width = max(sum(len(ex) for ex in row) for row in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        used = sum(len(ex) for ex in row)
        # the row's unused end is a block of its own: its positions restart too
        ids[r], labels[r], positions[r], _ = lay_out_row(
            row, [width - used] if width > used else []
        )
    from serifu.accel.varlen import varlen_kwargs

    return {"input_ids": ids, "position_ids": positions, "labels": labels} | varlen_kwargs(
        positions
    )
