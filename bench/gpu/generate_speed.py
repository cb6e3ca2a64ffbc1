"""NPC replies: Serifu's decoding path vs ``model.generate`` on the 4-bit model.

Baseline (the report's): the NF4 4-bit base with a LoRA adapter (PEFT), ``generate``.
Serifu: merged bf16 weights (LoRA folded in; the speed equals the plain bf16 model's) and
:class:`serifu.accel.decode.StaticDecoder` — a static KV cache, the one-token step replayed
as a CUDA graph. Prompt ~360 tokens, 48 new tokens, greedy, every reply runs its full length.
tokens/s = new tokens / wall time of the whole reply (prefill included); TTFT = time to the
first new token. Batches of 8 and 32 are concurrent conversations (throughput over all rows).

    python bench/gpu/generate_speed.py [--models line-3.6b,...] [--tiny] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import (
    REPORT_MODELS,
    TINY,
    Record,
    append_results,
    median_time,
    peak_gib,
    peak_gib_reset,
    random_model,
    results_path,
    sync,
)

PROMPT, NEW = 360, 48


def _with_lora(model: Any, targets: tuple[str, ...]) -> Any:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=list(targets))
    ).eval()


def _prompts(batch: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, PROMPT), generator=g)
    mask = torch.ones_like(ids)
    for row in range(batch):  # conversations differ in length: left padding
        mask[row, : row % 7] = 0
    return ids, mask


def _baseline(model: Any, ids: torch.Tensor, mask: torch.Tensor, new: int) -> None:
    model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=0,
    )


def _serifu(decoder: Any, ids: torch.Tensor, mask: torch.Tensor, new: int) -> None:
    for _ in decoder.generate(ids, mask, max_new_tokens=new):
        pass


def _graph_matches_eager(model: Any, decoder: Any, ids: torch.Tensor, mask: torch.Tensor) -> bool:
    """Greedy tokens from the CUDA-graph path equal those of plain eager steps."""
    from serifu.accel.decode import StaticDecoder

    eager = StaticDecoder(
        model, max_len=decoder.max_len, batch_size=decoder.batch_size, graph=False
    )
    a = torch.stack(list(decoder.generate(ids, mask, max_new_tokens=16)), 1)
    b = torch.stack(list(eager.generate(ids, mask, max_new_tokens=16)), 1)
    return bool(torch.equal(a, b))


def bench_model(model_id: str, label: str, repeats: int) -> list[Record]:
    from serifu import plugins
    from serifu.accel.decode import StaticDecoder

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    targets = tuple(plugins.get_base_model(model_id).lora_targets)
    records: list[Record] = []
    fast = random_model(model_id, quantize=False).eval()
    vocab = fast.config.vocab_size
    slow = _with_lora(random_model(model_id, quantize=True), targets)
    for batch in (1, 8, 32):
        ids, mask = _prompts(batch, vocab, seed=batch)
        ids, mask = ids.to(dev), mask.to(dev)
        decoder = StaticDecoder(fast, max_len=PROMPT + NEW + 8, batch_size=batch)
        peak_gib_reset()
        t_base, _ = median_time(functools.partial(_baseline, slow, ids, mask, NEW), repeats=repeats)
        peak_base = peak_gib()
        peak_gib_reset()
        t_fast, _ = median_time(
            functools.partial(_serifu, decoder, ids, mask, NEW), repeats=repeats
        )
        peak_fast = peak_gib()
        new_tokens = NEW * batch
        graph_ok = (
            _graph_matches_eager(fast, decoder, ids, mask) if decoder._graph is not None else None
        )
        workload = "generate" if batch == 1 else f"generate-batch{batch}"
        note = (
            "CUDA graph"
            if decoder._graph is not None
            else f"eager steps ({decoder.graph_error or 'no CUDA'})"
        )
        records.append(
            Record(
                label,
                workload,
                "tokens_per_s",
                round(new_tokens / t_fast, 2),
                round(new_tokens / t_base, 2),
                "tok/s",
                {"serifu": round(peak_fast, 2), "baseline": round(peak_base, 2)},
                repeats=repeats,
                notes=f"serifu: merged bf16 + static cache, {note}"
                + (f" (greedy tokens equal eager: {graph_ok})" if graph_ok is not None else "")
                + "; baseline: NF4+LoRA generate; peak: both models resident",
            )
        )
        if batch == 1:
            ttft_base, _ = median_time(
                functools.partial(_baseline, slow, ids, mask, 1), repeats=repeats
            )
            ttft_fast, _ = median_time(
                functools.partial(_serifu, decoder, ids, mask, 1), repeats=repeats
            )
            records.append(
                Record(
                    label,
                    workload,
                    "first_token_ms",
                    round(ttft_fast * 1000, 1),
                    round(ttft_base * 1000, 1),
                    "ms",
                    repeats=repeats,
                    notes="lower is better",
                )
            )
        print(
            f"{label} {workload}: serifu {new_tokens / t_fast:.1f} tok/s, generate {new_tokens / t_base:.1f} tok/s"
            f" ({note})",
            flush=True,
        )
        del decoder
    del fast, slow
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(REPORT_MODELS))
    ap.add_argument(
        "--tiny", action="store_true", help="tiny-* stand-ins on the CPU (tests the harness)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or results_path()
    t0 = time.time()
    for model_id in args.models.split(","):
        real = TINY[model_id] if args.tiny else model_id
        recs = bench_model(real, model_id if not args.tiny else real, args.repeats)
        append_results(recs, out)
        sync()
    print(f"wrote {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
