"""bench/lora_backward.py's rows on a small shape: the bytes the forward keeps for backward
(exact, unlike the resident-set peak) drop with the lean LoRA function, and the rows train
the same model (same first loss)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_lean_rows_keep_less_for_backward() -> None:
    from bench.lora_backward import one_row

    args = argparse.Namespace(
        tokens=128, hidden=256, intermediate=688, layers=2, vocab=512, repeats=1, threads=1,
        device="cpu", one_checkpointing="off",
    )  # fmt: skip
    rows = {row: one_row(row, args) for row in ("peft", "lean")}
    peft, lean = rows["peft"], rows["lean"]
    assert lean["lean_layers"] == 14 and peft["lean_layers"] == 0  # 2 layers x 7 projections
    assert lean["first_loss"] == peft["first_loss"]  # B starts at zero: the base's loss
    # PEFT: a float32 dropped-out copy per LoRA layer (6 of width 256, 1 of 688, 128 tokens)
    copies = 2 * (6 * 256 + 688) * 128 * 4 / 2**20
    assert peft["kept_mib"] - lean["kept_mib"] >= 0.8 * copies


def test_offload_rows_move_the_layers_inputs() -> None:
    """With checkpointing, what the forward keeps falls by exactly the layers' bf16 inputs,
    which the offload row reports as moved (``train.checkpoint_offload``)."""
    from bench.lora_backward import one_row

    args = argparse.Namespace(
        tokens=512, hidden=256, intermediate=688, layers=2, vocab=512, repeats=1, threads=1,
        device="cpu", one_checkpointing="on",
    )  # fmt: skip
    plain, moved = (one_row(row, args) for row in ("peft", "peft-offload"))
    inputs = 2 * 512 * 256 * 2 / 2**20  # layers x tokens x hidden x bf16
    assert moved["moved_mib"] == round(inputs, 1) and plain["moved_mib"] == 0
    assert abs(plain["kept_mib"] - moved["kept_mib"] - inputs) <= 0.05
    assert moved["first_loss"] == plain["first_loss"]
    assert moved["first_grad_norm"] == plain["first_grad_norm"] > 0  # the same gradients
