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
