"""NPC replies: Serifu's decoder vs HF ``generate`` (static cache + compile), the roofline,
4-bit weights, and an on/off ablation of each decoder lever.

Serifu: the bf16 model (LoRA merged: the speed of the plain bf16 model) on
:meth:`serifu.accel.decode.StaticDecoder.greedy`: static KV cache, the prompt pass and
``chunk`` decode steps captured as CUDA graphs, argmax + stop check on the device, one host
sync per chunk; at batch 1 the one-token forward is also compiled by inductor inside the
graph (``--compile``, auto = on CUDA: fuses the small kernels a step is made of). Peers (``--peers``): ``hf-static`` (``bench/gpu/peer_hf.py``: generate, static
cache, ``torch.compile(mode="reduce-overhead")``, on the same bf16 model in the same process,
run before Serifu's decoders at each batch and closed before they run: after them it ran ~6 %
slower, session 31) and ``recipe`` (the report's NF4 + LoRA through PEFT, ``generate``; batch 1
only).
Prompt ~360 tokens, 48 new tokens, greedy, every reply runs its full length; tokens/s = new
tokens / wall time of the whole reply (prefill included); first token = prefill + pick.
Medians of ``--repeats`` after warm-up (compilation and graph capture are warm-up).

Roofline (``bench/gpu/roofline.py``): measured HBM bandwidth ÷ bytes read per decoded token
(weights as stored + KV cache at the reply's middle position); ``roofline_share`` = the
batch-1 tokens/s ÷ that; ``decode_share`` the same for the decode steps alone (prefill out).

Ablation (batch 1, one lever off at a time, against the uncompiled decoder; plus compile
on vs off): sync every token (``chunk=1``), eager prompt
pass, the previous decoder (host-side pick every token, prompt eager), no CUDA graph at all,
the LoRA unmerged (PEFT layers in the graph). 4-bit: torchao int4 (tinygemm), GemLite's
Triton A16W4 kernels (``gemlite-torchao``: through torchao ``UIntxWeightOnlyConfig``; ``uint4``:
directly, Serifu's ``uint4`` reply weights, group 64) and bitsandbytes NF4 vs bf16 at batch 1
(tok/s, weight bytes), and ``nf4-lora`` / ``uint4-lora`` (the 4-bit base + rank-8 LoRA unmerged:
the layout that keeps a QLoRA adapter's quality; ``uint4-lora`` decodes the LoRA as the
product does, as reductions fused into the compiled step (``serifu.accel.lora_decode``),
``uint4-lora-peft`` with PEFT's matmuls; ``-cg``: GemLite's autotune timed inside
CUDA graphs; ``uint4t``, ``uint4t-lora``: the same codes in PyTorch layers that the compiled
step turns into fused GEMVs, ``bench/gpu/uint4_torch.py``; a lever, not the product's path), each decoder's step compiled when ``--compile`` is on
(against the compiled bf16 step; a library that cannot be compiled runs uncompiled and its
error text is kept in ``compile_error``); the faster is named in the notes.

Output vocabulary (gemma-3-270m / tiny-gemma, batch 1; ``--no-vocab`` skips it): the decoder
computing only akane's output-vocabulary rows of the head (``StaticDecoder(vocab=...)``)
against the same decoder computing the full head and masking it to that vocabulary
(``SERIFU_FULL_HEAD=1``'s path), compiled as the headline row. The vocabulary is akane's real
one where the model's real tokenizer is here (tiny models; gemma-3-270m once converted in
``$SERIFU_CACHE``), else a fixed seeded set of ``AKANE_VOCAB`` ids (the notes say which).

Time: ``--budget-s`` (default 230) skips the optional parts (HF peer past batch 1 on the
6-7B models, Serifu's compiled step past batch 1, the ablation's slow eager row) once spent,
and says so in the notes (how each step ran: ``step compiled`` / ``not compiled``); results
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
COMPILE = False  # --compile: torch.compile inside Serifu's step graphs (main sets it)
LARGE = {"novel-gptj-6b", "stablelm-beta-7b", "tiny-gptj", "tiny-llama"}
VOCAB_MODELS = {"gemma-3-270m", "tiny-gemma"}  # the output-vocabulary row (her cast's base)
AKANE_VOCAB = 19_106
"""Tokens in akane's output vocabulary on gemma-3-270m (the shipped cast, measured on the CPU
2026-12-03: ``len(load_chatbot(model="gemma-3-270m", character="akane").rules.vocab)``)."""


@dataclass
class GenRecord(Record):
    roofline_tok_s: float | None = None
    roofline_share: float | None = None
    decode_share: float | None = None
    compiled: bool | None = None  # the step ran compiled (None: not a compiled comparison)
    compile_error: str | None = None  # why compiling this decoder's step failed


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


def _greedy(
    decoder: Any, ids: torch.Tensor, mask: torch.Tensor, new: int, logit_mask: Any = None
) -> torch.Tensor:
    return torch.cat(list(decoder.greedy(ids, mask, max_new_tokens=new, logit_mask=logit_mask)), 1)


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
    prompt = "prompt pass captured" if decoder.graph_prefill else "prompt pass eager"
    parts.append(prompt + (" and compiled" if decoder.compile_prompt else ""))
    parts.append(f"Triton GEMV in {decoder.gemv} layers" if decoder.gemv else "cuBLAS GEMVs")
    if decoder.folded:
        parts.append(f"{decoder.folded} norms/activations folded into them")
    if decoder.fused:
        parts.append(f"{decoder.fused} sibling groups fused (one GEMV each)")
    if decoder.glu:
        parts.append(f"{decoder.glu} gated MLPs' products inside a GEMV")
    if decoder.residual:
        parts.append(f"{decoder.residual} layers' residual adds in their GEMVs")
    if decoder.shared_length:
        parts.append(f"one cache length for {decoder.shared_length} layers")
    if decoder.kv_write:
        parts.append(f"{decoder.kv_write} layers' step writes in the split-key kernel")
    if getattr(decoder, "kv_rope", 0):
        parts.append(f"{decoder.kv_rope} attention modules' rotary embedding in it")
    from serifu.accel.gemv import pdl_on

    if decoder.gemv and pdl_on(decoder.device):
        parts.append("GEMVs launched as programmatic dependents")
    parts.append("split-key attention" if decoder.split_kv else "sdpa attention")
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
    vocab: bool = True,
    kinds: tuple[str, ...] = ("int4", "nf4"),
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

    # her output vocabulary (the head computed for her rows only), batch 1
    her = None
    if vocab and model_id in VOCAB_MODELS and 1 in batches:
        her = _her_vocabulary(model_id, int(model.get_output_embeddings().weight.shape[0]))
    vocab_runs: list[VocabRun] = []

    # -- Serifu vs hf-static, batch 1 / 8 / 32 --------------------------------------------
    serifu_b1: Timing | None = None  # the headline decoder (compiled when --compile)
    plain_b1: Timing | None = None  # the same without compile: the ablation's reference
    for batch in batches:
        ids, mask = _prompts(batch, vocab, batch, dev)
        # the peer first: run after Serifu's decoders in one process, HF's step was ~6 %
        # slower than run before them (session 31, line-3.6b on one H100: 191 vs 204 tok/s;
        # Serifu's 304 either way). Its tokens are compared with Serifu's below.
        n16 = min(16, NEW + 8)
        peer: Timing | None = None
        peer_note = "hf-static: not run"
        hf16: torch.Tensor | None = None
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
                hf16 = hf.generate(ids, mask, n16).clone()
                peer_note = f"{hf.describe()}, run before Serifu's decoders"
            except Exception as exc:  # a peer that cannot run: a row that says why
                peer, peer_note = None, f"hf-static failed: {type(exc).__name__}: {exc}"[:500]
            hf.close()
            _free()
        # compiling costs ~0.5-1 min per shape on the large models: past batch 1 while the
        # time budget allows, as the peer's (how the step ran is in the record's note)
        compile_it = COMPILE and (batch == 1 or clock.left() > (300 if large else 150))
        decoder = _decoder(model, batch, compile=compile_it)
        peak_gib_reset()
        ours = _time(functools.partial(_greedy, decoder, ids, mask), batch, repeats)
        peak_ours = peak_gib()
        same = _equal_to_eager(model, decoder, ids, mask)
        ref16 = _greedy(decoder, ids, mask, n16).clone()
        if hf16 is not None:
            same_hf = bool(torch.equal(hf16[:, : ref16.shape[1]], ref16))
            peer_note += f" (greedy tokens equal Serifu's: {same_hf})"
        how = _how(decoder)
        if batch == 1 and her is not None:  # against this decoder, masked to her vocabulary
            vocab_runs.append(_vocab_run(model, decoder, her[0], ids, mask, repeats))
        del decoder
        _free()
        if batch == 1 and COMPILE:
            plain = _decoder(model, 1)
            plain_b1 = _time(functools.partial(_greedy, plain, ids, mask), 1, repeats)
            if her is not None:
                vocab_runs.append(_vocab_run(model, plain, her[0], ids, mask, repeats))
            del plain
            _free()
        elif batch == 1:
            plain_b1 = ours
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
    if her is not None and serifu_b1 is not None:
        head = model.get_output_embeddings().weight
        saved = (head.shape[0] - len(her[0])) * head.shape[1] * head.element_size()
        roof_her = bandwidth / (
            weight_bytes_per_token(model) - saved + kv_bytes_per_token(model, position)
        )
        for i, vr in enumerate(vocab_runs):
            workload = "generate-vocab" if i == 0 else "generate-vocab-nocompile"
            rec(
                workload,
                "tokens_per_s",
                vr.rows.tok_s,
                vr.full.tok_s,
                "tok/s",
                repeats=repeats,
                baseline_kind="full-head-masked",
                roofline_tok_s=round(roof_her, 1),
                roofline_share=round(vr.rows.tok_s / roof_her, 3),
                decode_share=round(vr.rows.decode_tok_s / roof_her, 3),
                compiled=vr.compiled,
                notes=f"serifu: only her output vocabulary's {len(her[0])} rows of the"
                f" {head.shape[0]}-row head computed; vocabulary: {her[1]}; baseline: the same"
                " decoder computing the full head, masked to her vocabulary (the"
                f" SERIFU_FULL_HEAD=1 path); {vr.how}; greedy tokens equal: {vr.same} (the"
                " other matmul's rounding may flip near-ties of random weights);"
                f" first token {vr.rows.first_ms:.1f} vs {vr.full.first_ms:.1f} ms; decode"
                f" steps alone {vr.rows.decode_tok_s:.0f} vs {vr.full.decode_tok_s:.0f}"
                f" tok/s; headline (full head, no mask) {serifu_b1.tok_s:.0f} tok/s; roofline"
                f" on her head's bytes ({roof_her:.0f} tok/s; full head {roof:.0f})",
            )
            rec(
                workload,
                "first_token_ms",
                vr.rows.first_ms,
                vr.full.first_ms,
                "ms",
                repeats=repeats,
                baseline_kind="full-head-masked",
                compiled=vr.compiled,
                notes="lower is better",
            )
            print(
                f"{label} {workload}: her rows {vr.rows.tok_s:.0f} tok/s, full head masked"
                f" {vr.full.tok_s:.0f} tok/s (tokens equal: {vr.same}; {vr.how})",
                flush=True,
            )

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
            model_id,
            label,
            model,
            serifu_b1,
            plain_b1,
            bf16_bytes,
            bandwidth,
            repeats,
            clock,
            kinds,
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


def _tokenizer_here(model_id: str) -> bool:
    """Whether the model's real tokenizer loads here without converting anything."""
    if model_id.startswith("tiny-"):
        return True  # shipped with serifu-models
    if model_id == "gemma-3-270m":
        from serifu_models.gemma import converted_dir, is_converted

        return is_converted(converted_dir())
    return False


def _her_vocabulary(model_id: str, width: int) -> tuple[Any, str]:
    """akane's output vocabulary as the chat path builds it, where the model's real tokenizer
    is here; else a fixed seeded set of ``AKANE_VOCAB`` ids. Returns it and where it came from."""
    import random

    from serifu.inference.vocab import OutputVocabulary

    why = "the real tokenizer is not here (gemma-3-270m: not converted in $SERIFU_CACHE)"
    try:
        if _tokenizer_here(model_id):
            from serifu.inference import load_chatbot

            bot = load_chatbot(
                model=model_id, character="akane", device="cpu", quantize=False, best_of=1
            )
            if bot.rules is not None and bot.rules.vocab is not None:
                ids = list(bot.rules.vocab.ids)
                return OutputVocabulary(ids), (
                    f"akane's real output vocabulary on the {model_id} tokenizer"
                    f" ({len(ids)} of {width} tokens)"
                )
            why = "akane's chatbot has no output vocabulary"
    except Exception as exc:  # the fixed set below, saying why
        why = f"{type(exc).__name__}: {exc}"[:200]
    k = min(AKANE_VOCAB, width // 2)
    ids = sorted(random.Random(0).sample(range(width), k))
    return OutputVocabulary(ids), (
        f"a fixed seeded set of {k} ids of {width} (akane's vocabulary size on gemma-3-270m,"
        f" measured on the CPU; {why})"
    )


@dataclass
class VocabRun:
    rows: Timing  # only her vocabulary's rows of the head
    full: Timing  # the full head, masked to her vocabulary
    same: bool
    compiled: bool
    how: str


def _vocab_run(
    model: Any, full: Any, vocab: Any, ids: torch.Tensor, mask: torch.Tensor, repeats: int
) -> VocabRun:
    """``full`` (a warm decoder, full head) masked to ``vocab`` vs a decoder with the same
    settings computing only ``vocab``'s rows."""
    from serifu.inference.decoding import TokenRules

    width = int(model.get_output_embeddings().weight.shape[0])
    logit_mask = TokenRules(vocab=vocab).mask(ids.device, width)
    t_full = _time(functools.partial(_greedy, full, ids, mask, logit_mask=logit_mask), 1, repeats)
    rows = _decoder(model, 1, compile=full.compile, vocab=vocab)
    t_rows = _time(functools.partial(_greedy, rows, ids, mask, logit_mask=logit_mask), 1, repeats)
    n = min(16, NEW + 8)
    same = torch.equal(
        _greedy(rows, ids, mask, n, logit_mask), _greedy(full, ids, mask, n, logit_mask)
    )
    how = _how(rows)
    if rows.head_rows is None:
        how += "; NOTE: the head is not a plain matrix, the full head ran"
    run = VocabRun(t_rows, t_full, bool(same), bool(rows.compile and full.compile), how)
    del rows
    _free()
    return run


IN_PLACE = (
    "int4",
    "gemlite-torchao",
    "uint4",
    "uint4-lora",
    "uint4-bf16table",
    "uint4-lora-bf16table",
    "uint4-lora-peft",
    "uint4-cg",
    "uint4-lora-cg",
    "uint4t",
    "uint4t-lora",
    "uint4s",
    "uint4s-lora",
)
"""4-bit kinds made from the bf16 model in place (``uint4t``: the same codes in
``bench/gpu/uint4_torch.py``'s PyTorch layers, fused GEMVs once compiled; ``-bf16table``: a
tied embedding/head table left in bf16 instead of the product's int8 rows; ``uint4s``: the
same codes on Serifu's own Triton GEMV, ``serifu.accel.uint4_gemv``, instead of GemLite's)."""


def _lora_layers(model: Any, model_id: str) -> Any:
    """PEFT LoRA layers (the cast recipe's r=8, alpha 16; B nonzero, as trained) unmerged on
    every target of the plugin, added to ``model``; returns the PEFT model."""
    from peft import LoraConfig, get_peft_model

    from serifu import plugins

    targets = list(plugins.get_base_model(model_id).lora_targets)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets)
    peft = get_peft_model(model, cfg).eval()
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.01)
    return peft


def _qlora_layout(nf4: Any, model_id: str) -> Any:
    """The layout a QLoRA adapter was trained in: the NF4 base with LoRA layers unmerged on
    every target (:func:`_lora_layers`); returns the model with them in place."""
    return _lora_layers(nf4, model_id).get_base_model()


def _uint4(
    model: Any, fuse_lora: bool = True, table: str = "int8", kernel: str | None = None
) -> Any:
    """``serifu.inference.quantize``'s uint4 reply weights (GemLite A16W4, group 64; a tied
    table in int8 rows or bf16): on a PEFT model the base goes 4-bit under the unmerged LoRA
    (as reductions, the product's default, or PEFT's matmuls: ``fuse_lora=False``). Returns
    the plain model."""
    from serifu.inference.quantize import prepare_reply_weights

    q = prepare_reply_weights(
        model, "uint4", merge=False, fuse_lora=fuse_lora, table=table, uint4_kernel=kernel
    )
    return q.get_base_model() if hasattr(q, "get_base_model") else q


def _quantize_gemlite_(model: Any, group_size: int = 64) -> Any:
    """GemLite's Triton A16W4 kernels through torchao (``UIntxWeightOnlyConfig``: 4-bit
    asymmetric, one scale and zero per ``group_size`` weights) on every linear layer but a head
    tied to the embeddings, in place. CUDA only (Triton)."""
    if not torch.cuda.is_available():
        raise RuntimeError("GemLite's kernels are Triton: CUDA only")
    import gemlite  # noqa: F401  (torchao imports it lazily; fail here with its name)
    from torchao.prototype.quantization.quant_api import UIntxWeightOnlyConfig
    from torchao.quantization import quantize_

    from serifu.inference.quantize import _head_is_tied

    head, tied = model.get_output_embeddings(), _head_is_tied(model)
    model.to(torch.bfloat16)

    def wanted(module: Any, _fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and not (tied and module is head)

    quantize_(model, UIntxWeightOnlyConfig(group_size=group_size, bit_width=4), filter_fn=wanted)
    return model


def _skip_4bit(label: str, kind: str, why: str, bf16: Timing) -> Record:
    print(f"{label} {kind}: skipped ({why})", flush=True)
    return GenRecord(
        label,
        f"generate-{kind}",
        "tokens_per_s",
        0.0,
        round(bf16.tok_s, 2),
        "tok/s",
        repeats=0,
        notes=f"skipped: {why}",
        baseline_kind="bf16",
    )


def _bench_4bit(
    model_id: str,
    label: str,
    model: Any,
    bf16: Timing,
    bf16_plain: Timing | None,
    bf16_bytes: int,
    bandwidth: float,
    repeats: int,
    clock: Clock,
    kinds: tuple[str, ...] = ("int4", "nf4"),
) -> list[Record]:
    """torchao int4 and bitsandbytes NF4 at batch 1 against bf16 (the headline decoder: its
    step compiled when ``COMPILE``; each 4-bit decoder is compiled the same way)."""
    from bench.gpu.roofline import roofline_tok_s
    from serifu.inference.quantize import quantize_int4_, quantize_nf4_, weight_bytes

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ids, mask = _prompts(1, model.config.vocab_size, 1, dev)
    out: list[Record] = []
    speeds: dict[str, float] = {}
    plain_note = f", uncompiled bf16 {bf16_plain.tok_s:.0f} tok/s" if COMPILE and bf16_plain else ""
    touched = False  # whether int4 / gemlite changed the bf16 model in place
    nf4: Any = None  # the NF4 model, once made (nf4-lora adds LoRA layers to it)
    for kind in kinds:
        if clock.left() < (60 if COMPILE else 20):
            out.append(_skip_4bit(label, kind, "time budget", bf16))
            continue
        try:
            if kind in IN_PLACE:
                if touched:  # the bf16 model was quantised in place by the row before
                    model = None
                    _free()
                    model = random_model(model_id, quantize=False).eval()
                # on the CPU the GemLite / torchao kinds refuse before any change
                touched = torch.cuda.is_available() or kind.startswith("uint4t")
                # in place: the bf16 model is done with
                if kind == "int4":
                    q = quantize_int4_(model)
                elif kind == "gemlite-torchao":
                    q = _quantize_gemlite_(model)
                elif not kind.startswith("uint4t") and not torch.cuda.is_available():
                    raise RuntimeError("uint4 runs GemLite's kernels on CUDA only")
                else:  # uint4-lora: the product's layout, LoRA over the 4-bit base
                    if kind.endswith("-cg"):  # GemLite's autotune timed inside CUDA graphs
                        import gemlite

                        gemlite.set_autotune("fast", use_cuda_graph=True)
                    lora = _lora_layers(model, model_id) if "lora" in kind else model
                    if kind.startswith("uint4t"):  # the same codes in PyTorch layers
                        from bench.gpu.uint4_torch import quantize_uint4_torch_

                        q = quantize_uint4_torch_(lora)
                        q = q.get_base_model() if hasattr(q, "get_base_model") else q
                    else:
                        table = "bf16" if kind.endswith("-bf16table") else "int8"
                        kernel = "serifu" if kind.startswith("uint4s") else "gemlite"
                        fuse = not kind.endswith("-peft")
                        q = _uint4(lora, fuse_lora=fuse, table=table, kernel=kernel)
            elif kind == "nf4-lora" and nf4 is not None:
                q = nf4  # the NF4 model of the row before: LoRA is added below
            elif not touched:
                q = quantize_nf4_(model)  # int4 did not run: in place too
            else:
                model = None
                _free()
                q = quantize_nf4_(random_model(model_id, quantize=False).eval())
            layout = ""
            if kind == "nf4":
                nf4 = q
            elif kind == "nf4-lora":
                q = _qlora_layout(q, model_id)
            if "-lora" in kind:
                lora = sum(1 for m in q.modules() if hasattr(m, "lora_A"))
                fused = sum(1 for m in q.modules() if type(m).__name__ == "DecodeLoraLinear")
                how_lora = f", {fused} as decode reductions" if fused else ", PEFT's matmuls"
                layout = f"; PEFT LoRA r=8 unmerged on {lora} layers{how_lora}"
            if hasattr(q, "serifu_uint4_kernel"):  # which kernels ran (after any fallback)
                layout += f"; uint4 layers on {q.serifu_uint4_kernel}'s kernels"
        except Exception as exc:  # a path that cannot run here is a row that says why
            out.append(_skip_4bit(label, kind, str(exc), bf16))
            continue
        try:
            decoder = _decoder(q, 1, compile=COMPILE)
            if COMPILE and kind.startswith("uint4t"):  # its reductions' block sizes tuned
                opts = {"coordinate_descent_tuning": True}
                decoder._compiled = torch.compile(q, dynamic=False, options=opts)
            t = _time(functools.partial(_greedy, decoder, ids, mask), 1, repeats)
            how = _how(decoder)
            compiled = bool(decoder.compile) if COMPILE else None
            error = decoder.graph_error if COMPILE and not decoder.compile else None
            same_note = ""
            if COMPILE:  # compiled 4-bit steps give the uncompiled 4-bit decoder's tokens?
                plain = _decoder(q, 1)
                n = min(16, NEW + 8)
                same = torch.equal(_greedy(decoder, ids, mask, n), _greedy(plain, ids, mask, n))
                same_note = f"; greedy tokens equal the uncompiled {kind} decoder's: {same}"
                del plain
            del decoder
            _free()
        except Exception as exc:  # e.g. a 4-bit kernel that cannot be captured
            out.append(_skip_4bit(label, kind, f"failed: {type(exc).__name__}: {exc}"[:500], bf16))
            model = q
            continue
        nbytes = weight_bytes(q)
        roof = roofline_tok_s(q, bandwidth, PROMPT + NEW // 2)
        speeds[kind] = t.tok_s
        if not COMPILE:
            what = "not compiled; bf16 baseline not compiled either"
        elif compiled:
            what = "step compiled (inductor) inside the graph, as the bf16 baseline's"
        else:
            what = f"compile FAILED ({error}), ran uncompiled; bf16 baseline compiled"
        out.append(
            GenRecord(
                label,
                f"generate-{kind}",
                "tokens_per_s",
                round(t.tok_s, 2),
                round(bf16.tok_s, 2),
                "tok/s",
                repeats=repeats,
                baseline_kind="bf16-compiled" if COMPILE else "bf16",
                roofline_tok_s=round(roof, 1),
                roofline_share=round(t.tok_s / roof, 3),
                decode_share=round(t.decode_tok_s / roof, 3),
                compiled=compiled,
                compile_error=error,
                notes=f"{kind} weights{layout}, {what}; {how}{same_note}; first token"
                f" {t.first_ms:.1f} ms (bf16 {bf16.first_ms:.1f}{plain_note}); weights"
                f" {nbytes / 2**30:.2f} GiB vs bf16 {bf16_bytes / 2**30:.2f} GiB; roofline on"
                " its own bytes",
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
            f"{label} {kind}: {t.tok_s:.0f} tok/s (bf16 {bf16.tok_s:.0f}), weights"
            f" {nbytes / bf16_bytes:.0%} of bf16 ({what}; {how})",
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
    from serifu.training.compile import raise_recompile_limit

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
    ap.add_argument(
        "--quant",
        default="int4,nf4",
        help="4-bit kinds, in order: int4 (torchao tinygemm), gemlite-torchao (torchao UIntx with"
        " GemLite's Triton kernels), uint4 (serifu's uint4 weights: GemLite A16W4 directly),"
        " uint4-lora (uint4 base + LoRA r=8 unmerged: the product's uint4 layout, LoRA as"
        " decode reductions), uint4-lora-peft (the same with PEFT's matmuls), nf4 (bnb),"
        " nf4-lora (NF4 base + LoRA r=8 unmerged: the layout a QLoRA adapter was trained in);"
        " uint4-cg, uint4-lora-cg: the same with GemLite's autotune timed inside CUDA graphs;"
        " uint4s, uint4s-lora: the same codes on Serifu's own Triton GEMV (serifu.accel.uint4_gemv)"
        " (from that row on)",
    )
    ap.add_argument(
        "--no-vocab", action="store_true", help="skip the output-vocabulary head row (gemma)"
    )
    ap.add_argument("--budget-s", type=float, default=230.0)
    ap.add_argument("--prompt", type=int, default=PROMPT, help="prompt tokens (tests: fewer)")
    ap.add_argument("--new", type=int, default=NEW, help="new tokens per reply")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    PROMPT, NEW = args.prompt, args.new
    COMPILE = args.compile == "on" or (args.compile == "auto" and torch.cuda.is_available())
    raise_recompile_limit(64)  # many decoders of one model, each compiling step and prompt
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
            kinds=tuple(k for k in args.quant.split(",") if k in (*IN_PLACE, "nf4", "nf4-lora")),
            vocab=not args.no_vocab,
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
