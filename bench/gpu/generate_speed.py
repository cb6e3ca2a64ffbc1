"""NPC replies: Serifu's decoder vs HF ``generate`` (static cache + compile), the roofline,
4-bit weights, and an on/off ablation of each decoder lever.

Serifu: the bf16 model (LoRA merged: the speed of the plain bf16 model) on
:meth:`serifu.accel.decode.StaticDecoder.greedy`: static KV cache, the prompt pass and
``chunk`` decode steps captured as CUDA graphs, argmax + stop check on the device, one host
sync per chunk; at batch 1 the one-token forward is also compiled by inductor inside the
graph (``--compile``, auto = on CUDA: fuses the small kernels a step is made of). Peers (``--peers``): ``hf-static`` (``bench/gpu/peer_hf.py``: generate, static
cache, ``torch.compile(mode="reduce-overhead")``, on the same bf16 model in the same process)
and ``recipe`` (the report's NF4 + LoRA through PEFT, ``generate``; batch 1 only).
Prompt ~360 tokens, 48 new tokens, greedy, every reply runs its full length; tokens/s = new
tokens / wall time of the whole reply (prefill included); first token = prefill + pick.
Medians of ``--repeats`` after warm-up (compilation and graph capture are warm-up).

Roofline (``bench/gpu/roofline.py``): measured HBM bandwidth ÷ bytes read per decoded token
(weights as stored + KV cache at the reply's middle position); ``roofline_share`` = the
batch-1 tokens/s ÷ that; ``decode_share`` the same for the decode steps alone (prefill out).

Ablation (batch 1, one lever off at a time, against the uncompiled decoder; plus compile
on vs off): sync every token (``chunk=1``), eager prompt
pass, the previous decoder (host-side pick every token, prompt eager), no CUDA graph at all,
the LoRA unmerged (PEFT layers in the graph). 4-bit: torchao int4 and bitsandbytes NF4 vs
bf16 at batch 1 (tok/s, weight bytes); the faster is named in the notes.

Time: ``--budget-s`` (default 230) skips the optional parts (HF peer past batch 1 on the
6-7B models, the ablation's slow eager row) once spent, and says so in the notes; results
are written after each model.

    python bench/gpu/generate_speed.py [--models line-3.6b,...] [--tiny] [--out FILE]
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
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
COMPILE = False  # --compile: torch.compile inside Serifu's batch-1 step graph (main sets it)
LARGE = {"novel-gptj-6b", "stablelm-beta-7b", "tiny-gptj", "tiny-llama"}


@dataclass
class GenRecord(Record):
    roofline_tok_s: float | None = None
    roofline_share: float | None = None
    decode_share: float | None = None


class Clock:
    def __init__(self, budget_s: float):
        self.t0 = time.perf_counter()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)


def _median(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    return median_time(fn, repeats=repeats, warmup=warmup)[0]


def _prompts(batch: int, vocab: int, seed: int, dev: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, PROMPT), generator=g)
    mask = torch.ones_like(ids)
    for row in range(batch):  # conversations differ in length: left padding
        mask[row, : row % 7] = 0
    return ids.to(dev), mask.to(dev)


def _greedy(decoder: Any, ids: torch.Tensor, mask: torch.Tensor, new: int) -> torch.Tensor:
    return torch.cat(list(decoder.greedy(ids, mask, max_new_tokens=new)), 1)


def _previous(decoder: Any, ids: torch.Tensor, mask: torch.Tensor, new: int) -> torch.Tensor:
    """The decoder before issue 15: graph step, but the pick on the host side every token."""
    return torch.stack(list(decoder.generate(ids, mask, max_new_tokens=new)), 1)


@dataclass
class Timing:
    tok_s: float
    first_ms: float
    decode_tok_s: float  # the steps after the first token only


def _time(run: Callable[[int], Any], batch: int, repeats: int, warmup: int = 1) -> Timing:
    total = _median(lambda: run(NEW), repeats, warmup)
    first = _median(lambda: run(1), repeats, 1)
    steps = max(total - first, 1e-9)
    return Timing(NEW * batch / total, first * 1000, (NEW - 1) * batch / steps)


def _decoder(model: Any, batch: int, **kw: Any) -> Any:
    from serifu.accel.decode import StaticDecoder

    return StaticDecoder(model, max_len=PROMPT + NEW + 8, batch_size=batch, **kw)


def _equal_to_eager(model: Any, fast: Any, ids: torch.Tensor, mask: torch.Tensor) -> bool:
    eager = _decoder(model, ids.shape[0], graph=False)
    return bool(torch.equal(_greedy(fast, ids, mask, 16), _previous(eager, ids, mask, 16)))


def _how(decoder: Any) -> str:
    if not decoder.use_graph:
        return f"eager ({decoder.graph_error or 'no CUDA'})"
    parts = [f"CUDA graphs, {decoder.chunk} steps per graph"]
    parts.append("step compiled (inductor)" if decoder.compile else "step not compiled")
    parts.append("prompt pass captured" if decoder.graph_prefill else "prompt pass eager")
    if decoder.graph_error:
        parts.append(decoder.graph_error)
    return ", ".join(parts)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bench_model(
    model_id: str,
    label: str,
    *,
    repeats: int,
    batches: list[int],
    peers: set[str],
    bandwidth: float,
    clock: Clock,
    ablate: bool,
    quant: bool,
) -> list[Record]:
    from bench.gpu.peer_hf import HFStatic
    from bench.gpu.roofline import kv_bytes_per_token, roofline_tok_s, weight_bytes_per_token
    from serifu import plugins
    from serifu.inference.quantize import weight_bytes

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    targets = list(plugins.get_base_model(model_id).lora_targets)
    large = model_id in LARGE
    records: list[Record] = []
    model = random_model(model_id, quantize=False).eval()
    vocab = model.config.vocab_size
    position = PROMPT + NEW // 2
    roof = roofline_tok_s(model, bandwidth, position)
    bf16_bytes = weight_bytes(model)
    roof_note = (
        f"roofline: {bandwidth / 1e9:.0f} GB/s ÷ ({weight_bytes_per_token(model) / 1e9:.3f} GB weights"
        f" + {kv_bytes_per_token(model, position) / 1e6:.1f} MB KV at position {position})"
    )

    def rec(workload: str, metric: str, ours: float, base: float, unit: str, **kw: Any) -> None:
        records.append(
            GenRecord(label, workload, metric, round(ours, 2), round(base, 2), unit, **kw)
        )

    # -- Serifu vs hf-static, batch 1 / 8 / 32 --------------------------------------------
    serifu_b1: Timing | None = None  # the headline decoder (compiled when --compile)
    plain_b1: Timing | None = None  # the same without compile: the ablation's reference
    for batch in batches:
        ids, mask = _prompts(batch, vocab, batch, dev)
        # compiling costs ~0.5-1 min per shape on the large models: batch 1 only
        decoder = _decoder(model, batch, compile=COMPILE and batch == 1)
        peak_gib_reset()
        ours = _time(functools.partial(_greedy, decoder, ids, mask), batch, repeats)
        peak_ours = peak_gib()
        same = _equal_to_eager(model, decoder, ids, mask)
        ref16 = _greedy(decoder, ids, mask, min(16, NEW + 8)).clone()
        how = _how(decoder)
        del decoder
        _free()
        if batch == 1 and COMPILE:
            plain = _decoder(model, 1)
            plain_b1 = _time(functools.partial(_greedy, plain, ids, mask), 1, repeats)
            del plain
            _free()
        elif batch == 1:
            plain_b1 = ours
        peer: Timing | None = None
        peer_note = "hf-static: not run"
        # compiling the peer costs ~1 min per shape on the 3-7B models: past batch 1 only
        # while the time budget allows (the note says when it was skipped)
        want_peer = "hf-static" in peers and (batch == 1 or clock.left() > (150 if large else 100))
        if "hf-static" in peers and not want_peer:
            peer_note = "hf-static: skipped (time budget)"
        peak_peer = 0.0
        if want_peer:
            hf = HFStatic(model)
            try:
                peak_gib_reset()
                peer = _time(functools.partial(hf.generate, ids, mask), batch, repeats, 2)
                peak_peer = peak_gib()
                hf_same = bool(torch.equal(hf.generate(ids, mask, ref16.shape[1]), ref16))
                peer_note = f"{hf.describe()} (greedy tokens equal Serifu's: {hf_same})"
            except Exception as exc:  # a peer that cannot run: a row that says why
                peer, peer_note = None, f"hf-static failed: {type(exc).__name__}: {exc}"[:500]
            hf.close()
            _free()
        workload = "generate" if batch == 1 else f"generate-batch{batch}"
        kind = "hf-static" if peer else "none"
        notes = (
            f"serifu: bf16 (LoRA merged), {how} (greedy tokens equal eager: {same}); {peer_note}"
        )
        extra: dict[str, Any] = {}
        if batch == 1:
            serifu_b1 = ours
            extra = {
                "roofline_tok_s": round(roof, 1),
                "roofline_share": round(ours.tok_s / roof, 3),
                "decode_share": round(ours.decode_tok_s / roof, 3),
            }
            notes += f"; {roof_note}; decode steps alone {ours.decode_tok_s:.0f} tok/s"
        rec(
            workload,
            "tokens_per_s",
            ours.tok_s,
            peer.tok_s if peer else 0.0,
            "tok/s",
            peak_gib={"serifu": round(peak_ours, 2), "baseline": round(peak_peer, 2)},
            repeats=repeats,
            notes=notes,
            baseline_kind=kind,
            **extra,
        )
        if batch == 1:
            rec(
                workload,
                "first_token_ms",
                ours.first_ms,
                peer.first_ms if peer else 0.0,
                "ms",
                repeats=repeats,
                notes="lower is better",
                baseline_kind=kind,
            )
        print(
            f"{label} {workload}: serifu {ours.tok_s:.0f} tok/s (first {ours.first_ms:.1f} ms)"
            + (f", hf-static {peer.tok_s:.0f} tok/s (first {peer.first_ms:.1f} ms)" if peer else "")
            + (f", roofline {roof:.0f} tok/s" if batch == 1 else ""),
            flush=True,
        )
    assert serifu_b1 is not None or 1 not in batches

    # -- ablation, batch 1: one lever off at a time ----------------------------------------
    if ablate and serifu_b1 is not None and plain_b1 is not None:
        # every row against the uncompiled decoder with the other levers on (compile is the
        # one row measured the other way round: compiled vs not)
        ids, mask = _prompts(1, vocab, 1, dev)
        if COMPILE:
            rec(
                "generate-ablation-compile",
                "tokens_per_s",
                serifu_b1.tok_s,
                plain_b1.tok_s,
                "tok/s",
                repeats=repeats,
                notes=f"torch.compile over the step, inside the graph, vs not; first token"
                f" {serifu_b1.first_ms:.1f} vs {plain_b1.first_ms:.1f} ms; decode steps alone"
                f" {serifu_b1.decode_tok_s:.0f} vs {plain_b1.decode_tok_s:.0f} tok/s",
                baseline_kind="serifu-no-compile",
                roofline_tok_s=round(roof, 1),
                roofline_share=round(serifu_b1.tok_s / roof, 3),
            )
        levers: list[tuple[str, Callable[[], tuple[Callable[[int], Any], str, Any]]]] = [
            ("sync-every-token", lambda: _greedy_run(model, ids, mask, chunk=1)),
            ("eager-prompt-pass", lambda: _greedy_run(model, ids, mask, graph_prefill=False)),
            ("previous-decoder", lambda: _previous_run(model, ids, mask)),
            ("lora-unmerged", lambda: _lora_run(model, targets, ids, mask)),
            ("no-cuda-graph", lambda: _greedy_run(model, ids, mask, graph=False)),
        ]
        n_abl = max(2, repeats - 1)
        for name, make in levers:
            if name == "no-cuda-graph" and large and clock.left() < 45:
                print(f"{label} ablation {name}: skipped (time budget)", flush=True)
                continue
            run, how, peft = make()
            t = _time(run, 1, n_abl)
            if peft is not None:  # the plain model back, LoRA layers removed unmerged
                model = peft.unload()
            rec(
                f"generate-ablation-{name}",
                "tokens_per_s",
                t.tok_s,
                plain_b1.tok_s,
                "tok/s",
                repeats=n_abl,
                notes=f"{how}; first token {t.first_ms:.1f} ms (the reference:"
                f" {plain_b1.first_ms:.1f} ms); baseline = Serifu with every other lever on,"
                " not compiled",
                baseline_kind="serifu-no-compile",
                roofline_tok_s=round(roof, 1),
                roofline_share=round(t.tok_s / roof, 3),
            )
            print(
                f"{label} ablation {name}: {t.tok_s:.0f} tok/s, first {t.first_ms:.1f} ms",
                flush=True,
            )
            del run
            _free()

    # -- 4-bit weights vs bf16, batch 1 ----------------------------------------------------
    if quant and serifu_b1 is not None and clock.left() < 30:
        print(f"{label} 4-bit: skipped (time budget)", flush=True)
    elif quant and serifu_b1 is not None:
        records += _bench_4bit(
            model_id, label, model, plain_b1 or serifu_b1, bf16_bytes, bandwidth, repeats
        )
    model = None
    _free()
    if "recipe" in peers and serifu_b1 is not None:
        records += _recipe(model_id, label, repeats, serifu_b1)
    return records


def _greedy_run(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, **kw: Any
) -> tuple[Callable[[int], Any], str, Any]:
    decoder = _decoder(model, ids.shape[0], **kw)
    return (lambda n: _greedy(decoder, ids, mask, n)), _how(decoder), None


def _previous_run(
    model: Any, ids: torch.Tensor, mask: torch.Tensor
) -> tuple[Callable[[int], Any], str, Any]:
    decoder = _decoder(model, ids.shape[0])
    how = "graph step, host-side pick every token, prompt pass eager"
    return (lambda n: _previous(decoder, ids, mask, n)), how, None


def _lora_run(
    model: Any, targets: list[str], ids: torch.Tensor, mask: torch.Tensor
) -> tuple[Callable[[int], Any], str, Any]:
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets)).eval()
    run, how, _ = _greedy_run(peft.get_base_model(), ids, mask)
    return run, f"PEFT LoRA r=4 on {','.join(targets)} unmerged; {how}", peft


def _bench_4bit(
    model_id: str,
    label: str,
    model: Any,
    bf16: Timing,
    bf16_bytes: int,
    bandwidth: float,
    repeats: int,
) -> list[Record]:
    from bench.gpu.roofline import roofline_tok_s
    from serifu.inference.quantize import quantize_int4_, quantize_nf4_, weight_bytes

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ids, mask = _prompts(1, model.config.vocab_size, 1, dev)
    out: list[Record] = []
    speeds: dict[str, float] = {}
    for kind in ("int4", "nf4"):
        try:
            if kind == "int4":
                q = quantize_int4_(model)  # in place: the bf16 model is done with
            else:
                model = None
                _free()
                q = quantize_nf4_(random_model(model_id, quantize=False).eval())
        except Exception as exc:  # a path that cannot run here is a row that says why
            print(f"{label} {kind}: skipped ({exc})", flush=True)
            out.append(
                GenRecord(
                    label,
                    f"generate-{kind}",
                    "tokens_per_s",
                    0.0,
                    round(bf16.tok_s, 2),
                    "tok/s",
                    repeats=0,
                    notes=f"skipped: {exc}",
                    baseline_kind="bf16",
                )
            )
            if kind == "int4":
                continue
            return out
        run, how, _ = _greedy_run(q, ids, mask)
        t = _time(run, 1, repeats)
        nbytes = weight_bytes(q)
        roof = roofline_tok_s(q, bandwidth, PROMPT + NEW // 2)
        speeds[kind] = t.tok_s
        out.append(
            GenRecord(
                label,
                f"generate-{kind}",
                "tokens_per_s",
                round(t.tok_s, 2),
                round(bf16.tok_s, 2),
                "tok/s",
                repeats=repeats,
                baseline_kind="bf16",
                roofline_tok_s=round(roof, 1),
                roofline_share=round(t.tok_s / roof, 3),
                decode_share=round(t.decode_tok_s / roof, 3),
                notes=f"{kind} weights (not compiled; bf16 baseline not compiled either), {how};"
                f" first token {t.first_ms:.1f} ms (bf16"
                f" {bf16.first_ms:.1f}); weights {nbytes / 2**30:.2f} GiB vs bf16"
                f" {bf16_bytes / 2**30:.2f} GiB; roofline on its own bytes",
            )
        )
        out.append(
            GenRecord(
                label,
                f"generate-{kind}",
                "weight_memory_share",
                round(nbytes / bf16_bytes, 3),
                1.0,
                "share of bf16",
                repeats=1,
                baseline_kind="bf16",
                notes="bytes of parameters and buffers as stored (quantisation scales included)",
            )
        )
        print(
            f"{label} {kind}: {t.tok_s:.0f} tok/s (bf16 {bf16.tok_s:.0f}), weights {nbytes / bf16_bytes:.0%} of bf16 ({how})",
            flush=True,
        )
        model = q
    if speeds:
        best = max(speeds, key=lambda k: speeds[k])
        for r in out:
            r.notes += f"; faster 4-bit path here: {best}"
    model = None
    _free()
    return out


def main() -> None:
    global PROMPT, NEW, COMPILE
    from bench.gpu.roofline import measure_bandwidth

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(REPORT_MODELS))
    ap.add_argument(
        "--tiny", action="store_true", help="tiny-* stand-ins on the CPU (tests the harness)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument(
        "--peers", default="hf-static", help="comma list: hf-static, recipe; '' for none"
    )
    ap.add_argument("--no-ablation", action="store_true")
    ap.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile Serifu's batch-1 step (auto: on CUDA)",
    )
    ap.add_argument("--no-4bit", action="store_true")
    ap.add_argument("--budget-s", type=float, default=230.0)
    ap.add_argument("--prompt", type=int, default=PROMPT, help="prompt tokens (tests: fewer)")
    ap.add_argument("--new", type=int, default=NEW, help="new tokens per reply")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    PROMPT, NEW = args.prompt, args.new
    COMPILE = args.compile == "on" or (args.compile == "auto" and torch.cuda.is_available())
    out = args.out or results_path()
    clock = Clock(args.budget_s)
    bw = measure_bandwidth(
        gib=4.0 if torch.cuda.is_available() else 0.125,
        repeats=7 if torch.cuda.is_available() else 3,
    )
    print(
        f"HBM bandwidth: copy {bw['copy_bytes_per_s'] / 1e9:.0f} GB/s, read {bw['read_bytes_per_s'] / 1e9:.0f} GB/s",
        flush=True,
    )
    peers = {p for p in args.peers.split(",") if p}
    for model_id in args.models.split(","):
        real = TINY[model_id] if args.tiny else model_id
        recs = bench_model(
            real,
            real if args.tiny else model_id,
            repeats=args.repeats,
            batches=[int(b) for b in args.batches.split(",")],
            peers=peers,
            bandwidth=bw["bytes_per_s"],
            clock=clock,
            ablate=not args.no_ablation,
            quant=not args.no_4bit,
        )
        for r in recs:
            r.notes += f"; HBM {bw['bytes_per_s'] / 1e9:.0f} GB/s measured"
        append_results(recs, out)
        sync()
        print(f"{model_id}: done at {args.budget_s - clock.left():.0f} s", flush=True)
    print(f"wrote {out} in {args.budget_s - clock.left():.0f} s")


def _recipe(model_id: str, label: str, repeats: int, ours: Timing) -> list[Record]:
    """The report's path at batch 1: NF4 base + LoRA through PEFT, ``generate``."""
    from peft import LoraConfig, get_peft_model

    from serifu import plugins

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    targets = list(plugins.get_base_model(model_id).lora_targets)
    slow: Any = get_peft_model(
        random_model(model_id, quantize=True), LoraConfig(r=4, lora_alpha=8, target_modules=targets)
    ).eval()
    ids, mask = _prompts(1, slow.config.vocab_size, 1, dev)

    def run(n: int) -> Any:
        return slow.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
            use_cache=True,
        )

    t = _time(run, 1, repeats)
    slow = None
    _free()
    return [
        GenRecord(
            label,
            "generate",
            "tokens_per_s",
            round(ours.tok_s, 2),
            round(t.tok_s, 2),
            "tok/s",
            repeats=repeats,
            baseline_kind="recipe",
            notes="recipe: NF4 + LoRA (PEFT) generate",
        ),
        GenRecord(
            label,
            "generate",
            "first_token_ms",
            round(ours.first_ms, 1),
            round(t.first_ms, 1),
            "ms",
            repeats=repeats,
            baseline_kind="recipe",
            notes="recipe first token; lower is better",
        ),
    ]


if __name__ == "__main__":
    main()
