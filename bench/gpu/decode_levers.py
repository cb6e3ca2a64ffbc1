"""Batch-1 reply levers on one model, in one process: where a compiled decode step's time
goes, and inductor's compile settings against the product's (``torch.compile(model,
dynamic=False)``).

For each variant (``--variants``): Serifu's decoder (``StaticDecoder.greedy``, CUDA graphs,
prompt pass captured, 8 steps per graph), its one-token step compiled with that variant's
``torch.compile`` arguments; whole-reply tok/s (~360-token prompt, 48 new tokens), first
token and decode-only tok/s, medians of ``--repeats``; and whether its greedy tokens equal
the first variant's. Variants: ``default`` (the product's), ``max-autotune`` (mode
``max-autotune-no-cudagraphs``: inductor times Triton templates against cuBLAS for every
matmul shape; the graph is Serifu's own), ``cdt`` (``coordinate_descent_tuning``: inductor
tunes its fused kernels' block sizes), ``inductor-deterministic`` (inductor chooses no kernel by
timing that changes its sums), ``reduce`` / ``reduce-cdt`` (every linear layer's decode
rows as a multiply-and-sum: one Triton reduction per layer instead of a cuBLAS GEMV), ``flex``
(HF's ``flex_attention``: FlexAttention's split-key decoding kernel), ``plain`` / ``split-kv`` /
``gemv`` / ``gemv-fold`` / ``split-kv-gemv`` (Serifu's Triton levers off or on: the one-query
steps' attention split over the keys, ``serifu.accel.split_kv``, instead of PyTorch's sdpa
kernel; the linear layers' one-row products as ``serifu.accel.gemv``'s GEMV instead of cuBLAS;
with ``fold``, each layer's input norms and MLP activation computed inside those GEMVs; none
of these fuses siblings), ``gemv-fuse`` (sibling layers on one input, q/k/v and gate/up, as
one GEMV: ``serifu.accel.gemv_fuse``; the product's default since session 31, so the same as
``default`` there), ``no-fuse`` (the default with siblings unfused: the decoder before session 31),
``gemv-fuse-glu`` (and a gated MLP's ``act(gate) * up`` inside that GEMV), ``gemv-pdl`` /
``gemv-fuse-glu-pdl`` (the GEMVs launched as programmatic dependents: each starts reading its
weights while the kernel before it finishes), ``gemv-residual`` (a Llama layer's residual adds
inside its ``o_proj`` and ``down_proj`` GEMVs: ``serifu.accel.residual_fold``),
``s34-default`` (the prompt pass eager: the decoder before session 35, which compiles it with
the step), attention backends. ``--peer`` adds HF ``generate`` with a static cache and
its compiled step (``bench/gpu/peer_hf.py``) in the same run, before the variants (its cache
and graphs closed before they run): after Serifu's decoders it ran ~6 % slower, Serifu's own
speed unchanged (session 31, one H100; ``--peer-last`` for the order before). A variant named
twice keeps both rows (``name#2``): in one process the first decoder ran ~6 % faster than the
ones after it on the H200 (session 31), so compare variants that are not first.

``--profile``: ``torch.profiler`` over one reply of each variant, and over its first token
alone (``profile_first``: the prompt pass and one pick); the CUDA kernels' device time per
decoded token, grouped (matmul, attention, fused Triton, copies, other)
with the top kernels by time, and the device's idle time between them binned by gap length
(``idle``), against the roofline's bytes: a kernel table says whether the
gap to the roofline is in the matmuls (bandwidth they do not reach) or between them (small
kernels). One H200, random weights of the plugin's architecture (no real 3.6–7B weights).

    python3 bench/gpu/decode_levers.py --model line-3.6b --variants default,max-autotune \
        --profile --peer --out $OUT/levers.json
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import random_model, sync, versions
from bench.gpu.generate_speed import NEW, PROMPT, _greedy, _how, _time
from bench.gpu.generate_speed import _decoder as _speed_decoder
from bench.gpu.host_probe import HostProbe
from serifu.accel import split_kv

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},  # the product's decoder (session 26 on: split-kv, gemv and fold)
    # Serifu's two Triton levers, each on or off: split-kv = the one-query steps' attention
    # with the keys split over many programs (serifu.accel.split_kv) instead of PyTorch's sdpa
    # kernel (cuDNN on sm90); gemv = the linear layers' one-row products as Serifu's GEMV
    # (serifu.accel.gemv: a few output rows per program, no split-K) instead of cuBLAS.
    # fold = each layer's input norms and MLP activation folded into the GEMVs that read them
    # (serifu.accel.gemv's NORM_READERS / ACT_READERS: two or three kernels fewer per layer).
    # fuse = sibling GEMVs on one input (q/k/v, gate/up) as one launch over stacked weights
    # (serifu.accel.gemv_fuse; the product's default since session 31, SERIFU_GEMV_FUSE=0
    # off): off in no-fuse, gemv, gemv-fold and split-kv-gemv (as they were measured before).
    # (In session 25's own result files "default" was "plain": neither lever; in session 25's
    # later ones "default" was "split-kv-gemv".)
    "plain": {"split_kv": False, "gemv": False},
    "split-kv": {"split_kv": True, "gemv": False},
    "gemv": {"split_kv": False, "gemv": True, "fold": False, "fuse": False},
    "gemv-fold": {"split_kv": False, "gemv": True, "fold": True, "fuse": False},
    "split-kv-gemv": {"split_kv": True, "gemv": True, "fold": False, "fuse": False},
    "gemv-fuse": {"fuse": True},  # each sibling group one GEMV launch (default since s. 31)
    "no-fuse": {"fuse": False},  # the default decoder before session 31
    # + a gated MLP's act(gate) * up inside its fused gate/up GEMV (serifu.accel.gemv_fuse
    # GluMLP, opt-in: SERIFU_GEMV_GLU=1); + the GEMVs launched as programmatic dependents of
    # the kernel before them (pdl: serifu.accel.gemv.set_pdl, opt-in: SERIFU_GEMV_PDL=1)
    "gemv-fuse-glu": {"fuse": True, "glu": True},
    # session 34: the gated product inside the down projection's GEMV instead, as it reads
    # gate/up's output (serifu.accel.gemv_fuse, SERIFU_GEMV_GLU=down; built without a GPU)
    "glu-down": {"glu": "down"},
    # session 34: one cache length for every layer, advanced once a step instead of once a
    # layer (serifu.accel.shared_length, SERIFU_DECODE_SHARED_LENGTH=1; built without a GPU)
    "shared-length": {"shared_length": True},
    "glu-down-shared-length": {"glu": "down", "shared_length": True},  # both: one timing first
    "gemv-pdl": {"pdl": True},
    # + a Llama layer's two residual adds inside its o_proj and down_proj GEMVs, as their bias
    # (serifu.accel.residual_fold, session 31; SERIFU_GEMV_RESIDUAL=0 turns it off)
    "gemv-residual": {"residual": True},  # the default since session 33
    "no-residual": {"residual": False},  # session 32's default (+ session 33's split-kv warps)
    # session 33: split-key programs of 64 keys and 8 warps whatever the head's width (as until
    # session 32) instead of a tile of 8,192 values and 2 warps (serifu.accel.split_kv.block_for,
    # warps_for: 32 keys of 256-wide heads); s32-default = both session-33 changes undone.
    # (Each decoder captures its graphs with the settings it was built under.)
    "s32-split-kv": {"kv_warps": 8, "kv_tile": 16384, "kv_fused": False},
    "s32-default": {"kv_warps": 8, "kv_tile": 16384, "kv_fused": False, "residual": False},
    # session 34: split-key attention's combine as its own kernel (as until session 33) instead
    # of inside the partial kernel (serifu.accel.split_kv.FUSED); s33-default = that alone
    "s33-default": {"kv_fused": False},
    # session 35: the prompt pass compiled with the step (once for any length, marked dynamic;
    # SERIFU_DECODE_COMPILE_PROMPT=0 turns it off); s34-default = eager, as until session 34
    "s34-default": {"compile_prompt": False},
    # session 36: the step's new key and value written by the split-key kernel, not by the
    # cache's update (serifu.accel.kv_write, SERIFU_DECODE_KV_WRITE=1; opt-in)
    "kv-write": {"kv_write": True},
    # + every layer on one length, advanced by the first layer of a step (one add a step)
    "kv-write-shared": {"kv_write": True, "shared_length": True},
    # session 37: + the GEMVs launched as programmatic dependents (last timed in session 31,
    # +1.0 % on stablelm-beta-7b's glu step; the kernels between them are fewer now)
    "kv-write-shared-pdl": {"kv_write": True, "shared_length": True, "pdl": True},
    # session 38: + a Llama attention's rotary embedding of the step's query and key inside
    # the same kernel (serifu.accel.rope_fold, SERIFU_DECODE_KV_ROPE=1; opt-in)
    "kv-write-shared-rope": {"kv_write": True, "shared_length": True, "kv_rope": True},
    "gemv-fuse-glu-pdl": {"fuse": True, "glu": True, "pdl": True},
    # how the reply is read (session 32): "host" = the product's greedy_ahead (tokens copied
    # to the host chunk by chunk, the stop flag read before the next chunk is launched);
    # "launched" = greedy_launched (the next chunk launched first: no host gap between chunks)
    "host": {"run": "host"},
    "launched": {"run": "launched"},
    # session 33: 16-step graphs (half the boundaries between graphs, SERIFU_DECODE_CHUNK=16).
    # (Session 33 also timed two copies of each step graph replayed in turn, host2/launched2:
    # no gain, the decoder's code removed; bench/results/2026-12-06j-…-graphs-stablelm7b.json)
    "chunk16": {"run": "host", "chunk": 16},
    "max-autotune": {"mode": "max-autotune-no-cudagraphs"},
    "cdt": {"options": {"coordinate_descent_tuning": True}},
    # session 39: inductor's deterministic mode for the step (TORCHINDUCTOR_DETERMINISTIC=1: no
    # timing on the device to choose between kernels whose sums differ), as
    # serifu.accel.gemv_tiles does for the GEMV; session 40 (H200): +0.1 %, the default's tokens
    "inductor-deterministic": {"options": {"deterministic": True}},
    # attention backends for the step (traced and captured under them; cuDNN is torch's
    # first choice on sm90 and the default's kernel)
    "no-cudnn": {"sdpa": ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")},
    "efficient": {"sdpa": ("EFFICIENT_ATTENTION",)},
    "math": {"sdpa": ("MATH",)},
    # every linear layer's decode rows as a float32 multiply-and-sum that inductor writes as
    # one Triton reduction (bias and neighbours fused) instead of a cuBLAS GEMV (+ split-K)
    "reduce": {"model": "reduce"},
    "reduce-cdt": {"model": "reduce", "options": {"coordinate_descent_tuning": True}},
    # HF's flex_attention: torch's FlexAttention, whose one-query kernel splits the keys
    # over thread blocks (flex decoding)
    "flex": {"model": "flex"},
}
# serifu.accel.split_kv's settings as shipped (read before any variant changes them)
PRODUCT_KV_WARPS, PRODUCT_KV_TILE, PRODUCT_KV_FUSED = split_kv.WARPS, split_kv.TILE, split_kv.FUSED
GROUPS = (
    ("matmul", re.compile(r"gemm|gemv|cutlass|nvjet|sm90|sm100|cublas|splitk|matmul|mm_", re.I)),
    ("attention", re.compile(r"flash|fmha|attention|sdpa|softmax|split_kv", re.I)),
    ("fused triton", re.compile(r"^triton_", re.I)),
    ("copy", re.compile(r"copy|memcpy|memset|fill|cat|index", re.I)),
)


class ReductionLinear(torch.nn.Linear):
    """``nn.Linear`` whose few-row inputs (a decode step) run as a float32 multiply-and-sum:
    compiled, one Triton reduction per layer instead of a cuBLAS GEMV."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() // x.shape[-1] > 16:
            return super().forward(x)
        y = (x.unsqueeze(-2).float() * self.weight.float()).sum(-1)
        if self.bias is not None:
            y = y + self.bias.float()
        return y.to(x.dtype)


@contextmanager
def _model_variant(model: Any, kind: str | None) -> Iterator[None]:
    """The model changed for one variant (linear layers as reductions, or flex attention),
    restored after it."""
    swapped = []
    attn = model.config._attn_implementation
    if kind == "reduce":
        for m in model.modules():
            if type(m) is torch.nn.Linear:
                m.__class__ = ReductionLinear
                swapped.append(m)
    elif kind == "flex":
        model.set_attn_implementation("flex_attention")
    try:
        yield
    finally:
        for m in swapped:
            m.__class__ = torch.nn.Linear
        if model.config._attn_implementation != attn:  # flex, or split-kv's decoder
            model.set_attn_implementation(attn)
        from serifu.accel.gemv import drop_gemv

        drop_gemv(model)  # the GEMV layers a gemv decoder switched on


def _decoder(model: Any, compile_kw: dict[str, Any]) -> Any:
    """generate_speed's batch-1 decoder, its step compiled with the variant's arguments."""
    levers = ("sdpa", "model", "pdl", "run", "chunk", "kv_warps", "kv_tile", "kv_fused")
    levers += ("split_kv", "gemv", "fold", "fuse", "glu", "residual", "shared_length")  # its own
    levers += ("compile_prompt", "kv_write", "kv_rope")
    kw = {k: v for k, v in compile_kw.items() if k not in levers}
    # the split-key programs of the graphs captured next: warps and values a tile, the
    # product's unless the variant says
    split_kv.WARPS = compile_kw.get("kv_warps", PRODUCT_KV_WARPS)
    split_kv.TILE = compile_kw.get("kv_tile", PRODUCT_KV_TILE)
    split_kv.FUSED = compile_kw.get("kv_fused", PRODUCT_KV_FUSED)
    dec = _speed_decoder(model, 1, compile=True, **{k: compile_kw.get(k) for k in levers[8:]})
    dec.chunk = compile_kw.get("chunk", dec.chunk)
    dec._compiled = torch.compile(model, dynamic=False, **kw)  # used by its next step
    return dec


def _timing(run: Callable[[int], Any], repeats: int, warmup: int = 1) -> dict[str, Any]:
    """generate_speed's timing (whole reply, first token, steps after it) as a row, with what
    the host did meanwhile (garbage collections, the allocator's driver calls: session 31's
    later decoders lost ~6 % between their kernels). The warm-up replies (compiling, for HF's
    peer) run before the probe, so its counts are the warm replies' own. Until session 37 the
    peer's compiling warm-up was counted in (its rows said ~86 collections, ~60 ms a call; a
    warm, uncompiled ``generate`` of a tiny model on the CPU collects 0.6 times a reply)."""
    for _ in range(warmup):
        run(NEW)
    with HostProbe() as probe:
        t = _time(run, 1, repeats, 1)
    return {
        "tok_s": round(t.tok_s, 1),
        "first_ms": round(t.first_ms, 2),
        "decode_tok_s": round(t.decode_tok_s, 1),
        # _time: one warm and the timed whole replies, then one warm and the timed first tokens
        "host": probe.summary(2 * repeats + 2),
    }


def _reply(dec: Any, ids: torch.Tensor, mask: torch.Tensor, new: int, run: str = "device") -> Any:
    """One greedy reply: ``greedy``'s device chunks (the bench's reading until session 32),
    or the host lists of ``greedy_ahead`` ("host", the product's) / ``greedy_launched``."""
    if run == "device":
        return _greedy(dec, ids, mask, new)
    chunks = dec.greedy_ahead(ids, mask, max_new_tokens=new, launch=run == "launched")
    return torch.tensor([t for tokens, _ in chunks for t in tokens[0]], device=ids.device)[None]


def _run_variant(
    model: Any, name: str, ids: torch.Tensor, mask: torch.Tensor, repeats: int, profile: bool
) -> tuple[dict[str, Any], torch.Tensor]:
    """One variant's decoder: compiled (not timed), timed, profiled; its row and tokens."""
    t1 = time.perf_counter()
    dec = _decoder(model, VARIANTS[name])
    run = VARIANTS[name].get("run", "device")
    tokens = _reply(dec, ids, mask, NEW, run).clone()  # compiles
    compile_s = time.perf_counter() - t1
    row: dict[str, Any] = _timing(functools.partial(_reply, dec, ids, mask, run=run), repeats)
    row |= {"compile_s": round(compile_s, 1), "compiled": bool(dec.compile)}
    row["graph_error"] = dec.graph_error
    # the reply's tokens as a digest: fresh_processes.py compares them across processes
    row["tokens_sha"] = hashlib.sha256(tokens.cpu().numpy().tobytes()).hexdigest()[:16]
    row["how"] = _how(dec)  # the levers that ran (GEMV layers, folded, fused groups)
    if profile:
        row["profile"] = profile_reply(lambda: _reply(dec, ids, mask, NEW, run))
        # the first token alone (the prompt pass and one pick; session 35)
        row["profile_first"] = profile_reply(lambda: _reply(dec, ids, mask, 1, run), 1)
    return row, tokens


def _group(name: str) -> str:
    for label, pattern in GROUPS:
        if pattern.search(name):
            return label
    return "other"


IDLE_BINS = ((0.0, 4.0, "to_4us"), (4.0, 50.0, "4_to_50us"), (50.0, float("inf"), "over_50us"))


def idle_gaps(spans: list[tuple[float, float]], tokens: int) -> dict[str, float]:
    """Where the device sat idle in one reply, per token: from the first kernel's start to
    the last one's end, the time no kernel ran, binned by gap length. Short gaps are the
    device's own between the kernels of a graph; long ones wait on the host (its sync and
    the next graph's launch). Session 31's later decoders lost ~6 % with the kernels' time
    unchanged: this says which gaps grew."""
    out: dict[str, float] = {"span_us_per_token": 0.0, "idle_us_per_token": 0.0}
    for _, _, name in IDLE_BINS:
        out[f"idle_{name}_per_token"] = 0.0
        out[f"gaps_{name}_per_token"] = 0.0
    if not spans:
        return out
    spans = sorted(spans)
    reach = spans[0][1]
    for start, end in spans[1:]:
        gap = start - reach
        if gap > 0:
            name = next(n for lo, hi, n in IDLE_BINS if lo <= gap < hi)
            out[f"idle_{name}_per_token"] += gap
            out[f"gaps_{name}_per_token"] += 1
            out["idle_us_per_token"] += gap
        reach = max(reach, end)
    out["span_us_per_token"] = reach - spans[0][0]
    return {k: round(v / tokens, 2) for k, v in out.items()}


def profile_reply(run: Callable[[], Any], tokens: int = NEW) -> dict[str, Any]:
    """CUDA kernels of one reply of ``tokens`` new tokens: device µs per token by group, and
    the top 25."""
    from torch.profiler import ProfilerActivity, profile

    run()
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        sync()
    kernels: dict[str, list[float]] = {}
    spans: list[tuple[float, float]] = []
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:  # one kernel (or copy) run
            kernels.setdefault(ev.name, []).append(float(ev.time_range.elapsed_us()))
            spans.append((float(ev.time_range.start), float(ev.time_range.end)))
    per_token = {name: sum(ts) / tokens for name, ts in kernels.items()}
    groups: dict[str, dict[str, float]] = {}
    for name, us in per_token.items():
        g = groups.setdefault(_group(name), {"us_per_token": 0.0, "kernels_per_token": 0.0})
        g["us_per_token"] += us
        g["kernels_per_token"] += len(kernels[name]) / tokens
    top = sorted(per_token.items(), key=lambda kv: -kv[1])[:25]
    return {
        "kernels_seen": sum(len(v) for v in kernels.values()),
        "device_us_per_token": round(sum(per_token.values()), 1),
        "groups": {k: {m: round(v, 1) for m, v in g.items()} for k, g in groups.items()},
        "idle": idle_gaps(spans, tokens),
        "top": [
            {"kernel": n[:120], "us_per_token": round(us, 2), "calls": len(kernels[n])}
            for n, us in top
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="line-3.6b")
    ap.add_argument("--variants", default="default,max-autotune")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--peer", action="store_true", help="also HF generate, static cache + compile")
    ap.add_argument(
        "--peer-last",
        action="store_true",
        help="the peer after the variants (before session 31; after them it ran ~6%% slower)",
    )
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from bench.gpu.roofline import measure_bandwidth, roofline_tok_s, weight_bytes_per_token
    from serifu.accel.gemv import set_pdl
    from serifu.training.compile import raise_recompile_limit

    # many decoders of one model in this process, each compiling its step and (since session
    # 35) its prompt pass again (their GEMV layers' classes swapped anew): past Dynamo's limit
    # of 8 the forward would run uncompiled
    raise_recompile_limit(64)
    t0 = time.perf_counter()
    model = random_model(args.model, quantize=False).eval()
    bandwidth = measure_bandwidth()["bytes_per_s"]
    torch.cuda.empty_cache()
    roof = roofline_tok_s(model, bandwidth, PROMPT + NEW // 2)
    g = torch.Generator().manual_seed(1)
    dev = next(model.parameters()).device
    ids = torch.randint(3, model.config.vocab_size, (1, PROMPT), generator=g).to(dev)
    mask = torch.ones_like(ids)
    out: dict[str, Any] = {
        "model": args.model,
        "versions": versions(),
        "bandwidth_gb_s": round(bandwidth / 1e9, 1),
        "weights_gb_per_token": round(weight_bytes_per_token(model) / 1e9, 3),
        "roofline_tok_s": round(roof, 1),
        "variants": {},
    }

    def save() -> None:
        args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")

    def peer() -> None:
        from bench.gpu.peer_hf import HFStatic

        hf = HFStatic(model)
        try:
            row = _timing(functools.partial(hf.generate, ids, mask), args.repeats, warmup=2)
            row["how"] = hf.describe()
        except Exception as exc:
            row = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        hf.close()  # its cache and graphs gone before the decoders run
        row["order"] = "last" if args.peer_last else "first"
        out["hf_static"] = row
        print("hf-static", json.dumps(row), flush=True)
        save()

    if args.peer and not args.peer_last:  # first: see --peer-last
        peer()
    reference: torch.Tensor | None = None
    names = [n for n in args.variants.split(",") if n]  # none: the peer alone (--peer)
    for i, variant in enumerate(names):
        # a name given twice keeps both rows (its second as name#2): order effects show
        name = variant if variant not in names[:i] else f"{variant}#{names[:i].count(variant) + 1}"
        if time.perf_counter() - t0 > args.budget_s:
            out["variants"][name] = {"skipped": "time budget"}
            continue
        torch._dynamo.reset()  # each variant traces afresh (under its own attention backends)
        backends = VARIANTS[variant].get("sdpa")
        ctx = sdpa_kernel([getattr(SDPBackend, b) for b in backends]) if backends else nullcontext()
        set_pdl(VARIANTS[variant].get("pdl", False))  # launches from here on (graphs captured)
        torch.cuda.reset_peak_memory_stats()
        try:
            with ctx, _model_variant(model, VARIANTS[variant].get("model")):
                row, tokens = _run_variant(model, variant, ids, mask, args.repeats, args.profile)
            row["roofline_share"] = round(row["tok_s"] / roof, 3)
            # the weights, the decoder's cache and graphs, and what the variant added (folded
            # norms' sums: session 29 found them holding a float32 copy of each weight)
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if reference is None:
                reference = tokens
            else:
                row["tokens_equal_first"] = bool(torch.equal(tokens, reference))
        except Exception as exc:  # a variant that cannot run: its row says why
            row = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        torch.cuda.empty_cache()
        out["variants"][name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "profile"}), flush=True)
        save()
    set_pdl(None)
    if args.peer and args.peer_last and time.perf_counter() - t0 < args.budget_s:
        peer()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    save()


if __name__ == "__main__":
    main()
