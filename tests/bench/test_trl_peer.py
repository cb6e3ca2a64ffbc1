"""The GPU training harness's TRL peer (bench/gpu/peer_trl.py), on the CPU with a tiny model:
it trains through TRL's SFTTrainer, gives the base back as it found it, and its records
carry ``baseline_kind="trl"`` next to Serifu's numbers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_trl_peer_trains_and_leaves_the_base_as_it_was() -> None:
    from bench.gpu.common import random_model
    from bench.gpu.peer_trl import trl_run
    from bench.gpu.train_speed import _examples

    model = random_model("tiny-gemma", quantize=True)
    names = {name for name, _ in model.named_modules()}
    examples, _ = _examples("dialogue", model.config.vocab_size, 8)
    r = trl_run(model, examples, ("q_proj", "v_proj"), token_budget=512, steps=2)
    assert len(r["times"]) == 2 and all(t > 0 for t in r["times"])
    # dialogue examples are 300+ tokens: one per 512-token bin, every token counted
    assert all(n in {len(e) for e in examples} for n in r["tokens"]) and len(r["tokens"]) == 2
    assert "completion-only loss" in r["notes"] and "liger off" in r["notes"]
    assert {name for name, _ in model.named_modules()} == names  # LoRA layers taken out
    assert not any("forward" in m.__dict__ for m in model.modules())  # TRL's fused head undone
    assert model.config._attn_implementation == "sdpa"


def test_peer_records_put_trl_next_to_serifu() -> None:
    from bench.gpu.train_speed import bench_peers

    records = bench_peers("tiny-llama", "tiny-llama", ["lines"], tiny=True, warmup=1, timed=1)
    rows = {r.workload: r.as_dict() for r in records}
    # on the CPU the Liger rows run too, with kernels "auto" resolved off (the harness is tested)
    liger_rows = {"lines-liger", "lines-liger-auto", "lines-liger-flce"}
    assert set(rows) == {"lines", "lines-auto"} | liger_rows
    for row in rows.values():
        assert row["baseline_kind"] == "trl" and row["metric"] == "real_tokens_per_s"
        assert row["serifu"] > 0 and row["baseline"] > 0 and row["ratio"] > 0
        assert set(row["mfu"]) == {"serifu", "baseline"} and row["repeats"] == 1
        assert "TRL SFTTrainer" in row["notes"] and "'packing_strategy': 'bfd'" in row["notes"]
    assert "checkpointing: set in the config" in rows["lines"]["notes"]
    assert "auto: not on a GPU" in rows["lines-auto"]["notes"]
    assert "kernels off (set in the config); loss serifu" in rows["lines"]["notes"]
    for name in liger_rows:
        assert "kernels off (auto: the model is on cpu" in rows[name]["notes"]
    assert (
        "first-step loss" in rows["lines-liger"]["notes"] and "vs" in rows["lines-liger"]["notes"]
    )


def _lines_rows(model_id: str, rows: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Serifu's ``rows`` next to TRL on ``lines`` (one warm-up and one timed step each)."""
    from bench.gpu.train_speed import bench_peers

    records = bench_peers(model_id, model_id, ["lines"], tiny=True, warmup=1, timed=1, rows=rows)
    return {r.workload: r.as_dict() for r in records}


def test_capture_row_runs_the_products_static_step_next_to_trl() -> None:
    """The ``liger-capture`` row (``train.capture = "on"``; on the CPU the static step runs
    eagerly) trains as the usual step and records its shapes, next to TRL in the same run."""
    got = _lines_rows("tiny-gemma", ("liger", "liger-capture"))
    assert set(got) == {"lines-liger", "lines-liger-capture"}
    captured = got["lines-liger-capture"]
    assert captured["baseline"] > 0 and captured["serifu"] > 0
    assert "runs as eagerly (no CUDA device" in captured["extra"]["capture"]
    assert "rel. diff" in captured["notes"]  # its first-step loss checked against liger's


def test_lean_row_runs_serifus_lora_function_next_to_trl() -> None:
    """The ``liger-lean`` row (``train.lora_backward = "lean"``) binds Serifu's LoRA function on
    the run's LoRA layers and starts from the same loss as ``liger`` (B is zero at the start)."""
    got = _lines_rows("tiny-llama", ("liger", "liger-lean"))
    assert set(got) == {"lines-liger", "lines-liger-lean"}
    lean = got["lines-liger-lean"]
    assert lean["extra"]["lean_lora_layers"] == 4  # tiny-llama: 2 layers x q, v
    assert "lean_lora_layers" not in got["lines-liger"].get("extra", {})
    assert "rel. diff 0.0e+00" in lean["notes"]


def test_offload_rows_run_next_to_trl() -> None:
    """The ``liger-offload`` rows (``train.checkpoint_offload = "on"``, and torch's
    ``save_on_cpu`` as transformers runs it) run and record why they offload or not: on the
    CPU neither does, and their first losses are ``liger``'s."""
    rows = ("liger", "liger-offload", "liger-offload-torch")
    got = _lines_rows("tiny-llama", rows)
    assert set(got) == {f"lines-{r}" for r in rows}
    ours, torchs = (got[f"lines-{r}"]["extra"]["checkpoint_offload"] for r in rows[1:])
    assert ours["setting"] == "on" and not ours["on"] and "CUDA only" in ours["reason"]
    assert torchs["setting"] == "torch" and not torchs["on"]
    assert "checkpoint_offload" not in got["lines-liger"].get("extra", {})
    for r in rows[1:]:
        assert "rel. diff 0.0e+00" in got[f"lines-{r}"]["notes"]


def test_autograd_head_row_trains_as_the_closed_form_head() -> None:
    """The bench row that puts the frozen head's gradient back through autograd (session 18's
    memory lever, measured on the GPU) follows the same loss curve as the closed form, and
    the harness sets the product's default back afterwards."""
    from bench.gpu.common import random_model
    from bench.gpu.train_speed import SERIFU, _examples, serifu_run
    from serifu.training import loss as loss_mod

    model = random_model("tiny-llama", quantize=True)
    examples, _ = _examples("lines", model.config.vocab_size, 64)
    settings = dict(SERIFU["lines"]) | {"max_tokens": 512, "pack_row_tokens": 256}
    runs = [
        serifu_run(
            model,
            examples,
            ("q_proj", "v_proj"),
            settings | extra,
            epochs=1,
            max_steps=3,
            dev="cpu",
        )
        for extra in ({}, {"closed_form_head": False}, {"loss_chunk_bytes": 2**10})
    ]
    assert loss_mod.CLOSED_FORM_HEAD is True
    assert (loss_mod.CHUNK_BYTES, loss_mod.MIN_CHUNK_TOKENS) == (2**28, 256)  # set back
    closed, autograd, small_chunks = (r["losses"] for r in runs)
    assert len(closed) == 3 and closed[0] == pytest.approx(autograd[0], rel=1e-6)
    assert closed[1:] == pytest.approx(autograd[1:], rel=1e-3)  # same gradients, same updates
    assert small_chunks == pytest.approx(closed, rel=1e-3)
    assert closed[2] != closed[0]  # the adapter did move


def test_row_filter_keeps_the_autograd_head_row_without_the_auto_rows() -> None:
    """Session 20's first GPU run lost the ``liger-autograd-head`` row to a substring test
    ("auto" in "autograd") under ``--no-auto-row``."""
    from bench.gpu.train_speed import HEAD_ROWS, ROWS, runnable_rows

    rows = ROWS + HEAD_ROWS
    assert runnable_rows(rows, auto_row=False, liger=True) == [
        "ckpt", "liger", "liger-flce", "liger-autograd-head", "liger-chunk64m",
    ]  # fmt: skip
    assert runnable_rows(rows, auto_row=True, liger=False) == ["ckpt", "auto"]
