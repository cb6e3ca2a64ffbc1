"""Dropout masks from a hash (serifu.accel.mask_hash): the rate dropout asks for, the same mask
for the same key and layer, unrelated masks otherwise, and the packed form lean LoRA keeps."""

from __future__ import annotations

import pytest
import torch

from serifu.accel.lora_train import pack_mask
from serifu.accel.mask_hash import MaskClock, keep_mask, lowbias32, packed_keep_mask


def _key(value: int) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.int64)


def test_lowbias32_is_the_published_hash_and_stays_in_32_bits() -> None:
    x = torch.tensor([0, 1, 2, 0xFFFFFFFF, 123456789], dtype=torch.int64)
    got = lowbias32(x)

    def reference(v: int) -> int:  # C. Wellons' lowbias32, in Python's unbounded integers
        v ^= v >> 16
        v = (v * 0x7FEB352D) & 0xFFFFFFFF
        v ^= v >> 15
        v = (v * 0x846CA68B) & 0xFFFFFFFF
        return v ^ (v >> 16)

    assert got.tolist() == [reference(int(v)) for v in x]
    assert int(got.min()) >= 0 and int(got.max()) <= 0xFFFFFFFF


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_masks_keep_one_minus_p_with_no_pattern(p: float) -> None:
    keep = keep_mask(_key(7), 3, (512, 640), p).float()
    n = keep.numel()
    assert abs(float(keep.mean()) - (1 - p)) < 4 * (p * (1 - p) / n) ** 0.5
    rows, cols = keep.mean(1), keep.mean(0)
    assert float(rows.std()) < 3 * (p * (1 - p) / 640) ** 0.5  # no row drops more than chance
    assert float(cols.std()) < 3 * (p * (1 - p) / 512) ** 0.5
    centred = keep - keep.mean()
    for a, b in ((centred[:, 1:], centred[:, :-1]), (centred[1:], centred[:-1])):
        corr = float((a * b).mean() / centred.var())
        assert abs(corr) < 0.01  # neighbours independent


def test_the_same_key_and_layer_give_the_same_mask_and_others_do_not() -> None:
    shape, p = (64, 128), 0.3
    first = keep_mask(_key(11), 0, shape, p)
    assert torch.equal(first, keep_mask(_key(11), 0, shape, p))
    for other in (keep_mask(_key(12), 0, shape, p), keep_mask(_key(11), 1, shape, p)):
        disagree = float((first != other).float().mean())
        assert abs(disagree - 2 * p * (1 - p)) < 0.03  # as for two independent masks


def test_packed_masks_are_the_packed_keep_masks() -> None:
    key = _key(5)
    keep = keep_mask(key, 2, (3, 10, 64), 0.1)
    packed = packed_keep_mask(key, 2, (3, 10, 64), 0.1)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 10, 8)
    assert torch.equal(packed, pack_mask(keep))


def test_the_clock_draws_a_new_key_from_torchs_generator() -> None:
    clock = MaskClock.on("cpu")
    torch.manual_seed(0)
    clock.advance()
    first = int(clock.key)
    clock.advance()
    assert int(clock.key) != first
    torch.manual_seed(0)
    clock.advance()
    assert int(clock.key) == first  # the run's seed decides the keys
    assert torch.equal(
        clock.mask(4, (8, 16), 0.2, True), packed_keep_mask(clock.key, 4, (8, 16), 0.2)
    )
