"""The whole-step capture bench's static step (bench/gpu/train_capture.py), on the CPU with a
tiny model: fixed shapes (one padded row, padded boundaries, weight-0 padding positions in
the loss) must train exactly as the product's step does. The CUDA graph itself needs a GPU;
its measurement lives in docs/benchmarks.md."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _examples(n: int, seed: int = 0) -> list:
    from serifu.training.examples import IGNORE, Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randrange(3, 200) for _ in range(rng.randrange(4, 30))]
        prompt = rng.randrange(0, len(ids) - 1)
        out.append(Example(ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def test_static_batch_gathers_the_positions_the_product_loss_uses() -> None:
    from bench.gpu.train_capture import plan_shapes, static_batch
    from serifu.accel.loss import labelled_positions
    from serifu.training.batches import pack_batch

    examples = _examples(9)
    shapes = plan_shapes([examples[:5], examples[5:]], budget=256, chunk=64)
    assert shapes.longest == max(map(len, examples)) and shapes.labels % 64 == 0
    for part in (examples[:5], examples[5:]):
        packed = pack_batch(part)
        width = packed["input_ids"].shape[1]
        dim = 3
        hidden = torch.arange(width * dim, dtype=torch.float32).view(1, width, dim)
        want_h, want_y = labelled_positions(hidden, packed["labels"])
        batch = static_batch(part, shapes)
        real = batch["weight"] > 0
        wide = torch.zeros(1, shapes.width, dim)
        wide[:, :width] = hidden
        got_h = wide.reshape(-1, dim).index_select(0, batch["index"][real])
        assert torch.equal(got_h, want_h) and torch.equal(batch["targets"][real], want_y)
        assert float(batch["inv_labels"]) == pytest.approx(1 / len(want_y))
        assert torch.equal(batch["input_ids"][:, :width], packed["input_ids"])
        cu = batch["cu"]
        assert cu.shape == (shapes.sequences + 1,) and int(cu[-1]) == shapes.width
        sizes = [b - a for a, b in zip(cu.tolist(), cu.tolist()[1:], strict=False)]
        assert min(sizes) > 0 and max(sizes) <= shapes.longest  # none empty, none past the bound
        assert cu.tolist()[: len(part) + 1] == [0, *itertools.accumulate(map(len, part))]
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
        assert starts == cu.tolist()[:-1]  # positions restart where every example starts


def test_static_step_trains_as_the_product_step() -> None:
    """Same LoRA start, same data: the static step's losses follow the product's step by
    step (so the gradients and updates agree), on tiny-gemma's QLoRA base."""
    from bench.gpu.train_capture import run_rows

    torch.set_num_threads(1)
    out = run_rows("gemma-3-270m", steps=4, warmup=1, rows=("eager", "static"), tiny=True)
    eager, static = out["rows"]["eager"], out["rows"]["static"]
    assert eager["error"] is None and static["error"] is None
    assert len(static["losses"]) == 4 and len(set(eager["losses"])) > 1
    assert static["losses"] == pytest.approx(eager["losses"], rel=1e-4)
    assert static["max_loss_rel_diff"] < 1e-4
