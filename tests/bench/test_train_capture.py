"""The whole-step capture bench (bench/gpu/train_capture.py), on the CPU with a tiny model:
its static row (the product's ``serifu.training.capture`` step) trains exactly as the
product's usual step does. The CUDA graph itself needs a GPU; its measurement lives in
docs/benchmarks.md; the static step's own tests are in tests/training/test_capture.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_static_step_trains_as_the_product_step() -> None:
    """Same LoRA start, same data: the static step's losses follow the product's step by
    step (so the gradients and updates agree), on tiny-gemma's QLoRA base."""
    import serifu.accel.loss as head_loss
    from bench.gpu.train_capture import run_rows

    torch.set_num_threads(1)
    # no CUDA: the captured rows run the static step eagerly; "-ahead" builds each next batch early
    rows = ("eager", "static", "captured-fused", "captured-fused-ahead")
    rows += ("eager-lean", "captured-fused-ahead-lean", "captured-fused-ahead-lean-ckpt")
    out = run_rows("gemma-3-270m", steps=4, warmup=1, rows=rows, tiny=True)
    eager, static = out["rows"]["eager"], out["rows"]["static"]
    assert all(r["error"] is None for r in out["rows"].values())
    assert head_loss.SOFTMAX_KERNEL == "eager"  # the fused row's setting is taken back
    assert out["rows"]["captured-fused"]["losses"] == static["losses"]
    assert out["rows"]["captured-fused-ahead"]["losses"] == static["losses"]
    assert len(static["losses"]) == 4 and len(set(eager["losses"])) > 1
    assert static["losses"] == pytest.approx(eager["losses"], rel=1e-4)
    assert static["max_loss_rel_diff"] < 1e-4
    # the lean LoRA function in both steps: the same start (B is zero), other dropout masks
    for name, ref in (("eager-lean", eager), ("captured-fused-ahead-lean", static)):
        lean = out["rows"][name]["losses"]
        assert lean[0] == ref["losses"][0] and lean == pytest.approx(ref["losses"], rel=0.05)
    # checkpointed, recomputing without RNG replay: the lean static step's losses again
    ckpt = out["rows"]["captured-fused-ahead-lean-ckpt"]["losses"]
    assert ckpt == pytest.approx(out["rows"]["captured-fused-ahead-lean"]["losses"], rel=1e-5)
