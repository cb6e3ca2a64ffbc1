"""Padding-free packing gives the same loss as padded batches (no attention across examples)."""

from __future__ import annotations

import pytest
import torch

from serifu.modeling import load_model, resolve_base
from serifu.training.batches import pack_batch, pad_batch, plan_epoch
from serifu.training.examples import IGNORE, Example
from serifu.training.loss import loss_sum


def _examples() -> list[Example]:
    g = torch.Generator().manual_seed(0)
    out = []
    for n, masked in [(7, 3), (12, 0), (5, 2)]:
        ids = torch.randint(6, 1900, (n,), generator=g).tolist()
        out.append(Example(ids, [IGNORE] * masked + ids[masked:]))
    return out


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-gemma", "tiny-gptj", "tiny-neox"])
def test_packed_loss_equals_padded_loss(model_id: str) -> None:
    model = load_model(resolve_base(model_id), quantize=False, device="cpu")
    examples = _examples()
    with torch.no_grad():
        packed, n_packed = loss_sum(model, pack_batch(examples))
        padded, n_padded = loss_sum(model, pad_batch(examples, pad_id=0))
        one_by_one = sum(float(loss_sum(model, pad_batch([ex], 0))[0]) for ex in examples)
        hf = model(
            **{k: v for k, v in pad_batch(examples, 0).items()}
        ).loss  # the model's own mean loss
    assert n_packed == n_padded == sum(sum(t != IGNORE for t in ex.labels[1:]) for ex in examples)
    assert float(packed) == pytest.approx(float(padded), rel=1e-5)
    assert float(packed) == pytest.approx(one_by_one, rel=1e-5)
    assert float(padded) / n_padded == pytest.approx(float(hf), rel=1e-5)


def test_token_budget_plan_is_deterministic_and_covers_all() -> None:
    lengths = [5, 40, 12, 33, 8, 21, 17, 3]
    a = plan_epoch(lengths, batch_size=8, max_tokens=50, seed=1, epoch=2)
    assert a == plan_epoch(lengths, batch_size=8, max_tokens=50, seed=1, epoch=2)
    assert a != plan_epoch(lengths, batch_size=8, max_tokens=50, seed=1, epoch=3)
    assert sorted(i for step in a for i in step) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in step) <= 50 for step in a)
    assert [
        len(s) for s in plan_epoch(lengths, batch_size=3, max_tokens=None, seed=0, epoch=0)
    ] == [3, 3, 2]


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-neox"])
def test_rows_bounded_by_row_tokens_give_the_same_loss(model_id: str) -> None:
    """Several packed rows (the shorter ones evened out by a label-free tail block)."""
    model = load_model(resolve_base(model_id), quantize=False, device="cpu")
    examples = _examples()
    rows = pack_batch(examples, row_tokens=19)
    assert rows["input_ids"].shape == (2, 19)  # in order: [7, 12] and [5] (+ a tail of 14)
    uneven = pack_batch([examples[0], examples[1]], row_tokens=8)  # rows of 7 and 12: a tail of 5
    assert uneven["input_ids"].shape == (2, 12)
    assert uneven["position_ids"][0].tolist() == [*range(7), *range(5)]
    assert (uneven["labels"][0, 7:] == IGNORE).all()
    with torch.no_grad():
        one_row, n_one = loss_sum(model, pack_batch(examples))
        bounded, n_bounded = loss_sum(model, rows)
        tail, n_tail = loss_sum(model, uneven)
        ref, n_ref = loss_sum(model, pad_batch([examples[0], examples[1]], pad_id=0))
    assert n_one == n_bounded and n_tail == n_ref
    assert float(bounded) == pytest.approx(float(one_row), rel=1e-5)
    assert float(tail) == pytest.approx(float(ref), rel=1e-5)


@pytest.mark.parametrize("row_tokens", [None, 12, 19])
def test_packed_rows_lay_out_each_example_in_turn(row_tokens: int | None) -> None:
    """Each row holds its examples' ids and labels one after another, the first label of
    each example masked, positions restarting at every example and at the row's unused end
    (a block of its own), and the boundaries in ``cu_seq_lens`` for varlen attention."""
    examples = _examples()
    batch = pack_batch(examples, row_tokens)
    rows = (
        [[0, 1, 2]]
        if row_tokens is None
        else ([[0], [1], [2]] if row_tokens == 12 else [[0, 1], [2]])
    )
    width = max(sum(len(examples[i]) for i in row) for row in rows)
    assert batch["input_ids"].shape == (len(rows), width)
    for r, row in enumerate(rows):
        ids, labels, positions = [], [], []
        for i in row:
            ex = examples[i]
            ids += ex.input_ids
            labels += [IGNORE, *ex.labels[1:]]
            positions += list(range(len(ex)))
        rest = width - len(ids)
        assert batch["input_ids"][r].tolist() == ids + [0] * rest
        assert batch["labels"][r].tolist() == labels + [IGNORE] * rest
        assert batch["position_ids"][r].tolist() == positions + list(range(rest))
    starts = (batch["position_ids"].flatten() == 0).nonzero().flatten().tolist()
    assert batch["cu_seq_lens_q"].tolist() == [*starts, len(rows) * width]
