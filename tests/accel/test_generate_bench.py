"""The reply benchmark (bench/gpu/generate_speed.py) runs end to end on the CPU with --tiny:
Serifu vs the HF static-cache peer, roofline fields, the lever ablation, 4-bit rows, her
output vocabulary's head rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _bench(tmp_path: Path, *args: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Run generate_speed.py --tiny on gemma's stand-in; its records by (workload, metric)."""
    out = tmp_path / "gen.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = ["--tiny", "--models", "gemma-3-270m", "--prompt", "24", "--new", "6"]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/gpu/generate_speed.py"),
            *base,
            *args,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text(encoding="utf-8"))
    return {(r["workload"], r["metric"]): r for r in rows}


def test_generate_speed_tiny_writes_every_kind_of_row(tmp_path: Path) -> None:
    by = _bench(tmp_path, "--batches", "1,2", "--repeats", "1")
    head = by[("generate", "tokens_per_s")]
    assert head["baseline_kind"] == "hf-static" and head["baseline"] > 0
    assert head["roofline_tok_s"] > 0 and 0 < head["roofline_share"] == round(
        head["serifu"] / head["roofline_tok_s"], 3
    )
    # the fast path's greedy tokens equal the eager path's, and HF's
    assert "greedy tokens equal eager: True" in head["notes"]
    assert "greedy tokens equal Serifu's: True" in head["notes"]
    # the peer runs before Serifu's decoders (after them it ran ~6 % slower, session 31)
    assert "run before Serifu's decoders" in head["notes"]
    assert by[("generate", "first_token_ms")]["serifu"] > 0
    assert by[("generate-batch2", "tokens_per_s")]["baseline_kind"] == "hf-static"
    levers = {w for w, _ in by if w.startswith("generate-ablation-")}
    assert levers == {
        f"generate-ablation-{n}"
        for n in (
            "sync-every-token",
            "eager-prompt-pass",
            "previous-decoder",
            "lora-unmerged",
            "no-cuda-graph",
        )
    }
    assert all(by[(w, "tokens_per_s")]["baseline"] == head["serifu"] for w in levers)
    # 4-bit: torchao int4 has no CPU kernel (a row that says so), bitsandbytes NF4 runs
    assert by[("generate-int4", "tokens_per_s")]["notes"].startswith("skipped:")
    nf4 = by[("generate-nf4", "weight_memory_share")]
    assert 0 < nf4["serifu"] < 1
    assert by[("generate-nf4", "tokens_per_s")]["serifu"] > 0


def test_vocab_row_and_4bit_compile_fields(tmp_path: Path) -> None:
    """Her rows of the head vs the full head masked to her vocabulary; 4-bit compile fields."""
    by = _bench(
        tmp_path,
        "--batches",
        "1",
        "--repeats",
        "1",
        "--peers",
        "",
        "--no-ablation",
        "--quant",
        "int4,uint4,uint4-lora,uint4t-lora,nf4,nf4-lora",
    )
    vocab = by[("generate-vocab", "tokens_per_s")]
    assert vocab["baseline_kind"] == "full-head-masked"
    assert vocab["serifu"] > 0 and vocab["baseline"] > 0 and vocab["compiled"] is False
    # the tiny models' tokenizer is here: akane's real vocabulary, a strict part of the head
    assert "akane's real output vocabulary on the tiny-gemma tokenizer" in vocab["notes"]
    assert "greedy tokens equal: True" in vocab["notes"]  # fp32 on the CPU: no near-ties
    # her head reads fewer bytes than the full one: a higher roofline
    assert vocab["roofline_tok_s"] > by[("generate", "tokens_per_s")]["roofline_tok_s"]
    assert by[("generate-vocab", "first_token_ms")]["serifu"] > 0
    assert ("generate-vocab-nocompile", "tokens_per_s") not in by  # nothing compiled here
    # 4-bit rows say whether their step was compiled (--compile auto: not on the CPU)
    nf4 = by[("generate-nf4", "tokens_per_s")]
    assert nf4["serifu"] > 0 and nf4["compiled"] is None and nf4["compile_error"] is None
    assert "not compiled" in nf4["notes"] and nf4["baseline_kind"] == "bf16"
    assert by[("generate-int4", "tokens_per_s")]["notes"].startswith("skipped:")
    # uint4 (GemLite) is CUDA-only: rows that say so, and the NF4 rows after them still run
    for kind in ("uint4", "uint4-lora"):
        assert "CUDA only" in by[(f"generate-{kind}", "tokens_per_s")]["notes"]
    # the QLoRA layout: the NF4 model with LoRA layers on every target, a few more bytes
    qlora = by[("generate-nf4-lora", "tokens_per_s")]
    assert qlora["serifu"] > 0 and "PEFT LoRA r=8 unmerged on" in qlora["notes"]
    assert "unmerged on 0 layers" not in qlora["notes"]
    share = by[("generate-nf4-lora", "weight_memory_share")]["serifu"]
    assert by[("generate-nf4", "weight_memory_share")]["serifu"] < share < 1
    # the uint4 codes as PyTorch layers run anywhere, the LoRA as decode reductions
    torch_layers = by[("generate-uint4t-lora", "tokens_per_s")]
    assert torch_layers["serifu"] > 0 and "as decode reductions" in torch_layers["notes"]
    assert by[("generate-uint4t-lora", "weight_memory_share")]["serifu"] < 1


def test_without_the_real_tokenizer_a_fixed_set_of_her_size() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.gpu.generate_speed import AKANE_VOCAB, _her_vocabulary

    vocab, note = _her_vocabulary("line-3.6b", 50_400)  # no tokenizer here for it
    again, _ = _her_vocabulary("line-3.6b", 50_400)
    assert len(vocab) == AKANE_VOCAB and vocab.ids == again.ids  # seeded: the same each run
    assert vocab.ids == sorted(set(vocab.ids)) and vocab.ids[0] >= 0 and vocab.ids[-1] < 50_400
    assert note.startswith(f"a fixed seeded set of {AKANE_VOCAB} ids")
