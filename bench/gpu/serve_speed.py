"""``serifu serve`` with 8 heroines x 4 players at once: mixed-adapter batches vs switching.

One base model (the architecture of each report model, random bf16 weights, built from its
config: no hub) carries 8 LoRA adapters, one per sample-cast heroine, written to a temp
folder as training writes them (PEFT ``adapter_config.json`` + safetensors, ``serifu.json``)
and loaded by the server's own loader (:func:`serifu.serving.heroines.heroines_on`). LoRA B
is random (non-zero), so every heroine's adapter changes the output.

32 clients (4 players per heroine) each send R streamed chat requests one after another
(her card's system prompt + a short game-turn line, ``max_tokens`` 48) to a live uvicorn
server on 127.0.0.1 running Serifu's real app and scheduler
(:class:`serifu.serving.engine.Engine`, max batch 32, batch wait 10 ms: a batch keeps
taking requests that can join it until none joined for 10 ms):

- serifu (mixed): waiting requests of *different* heroines share one decoding batch, each
  row with her own adapter — ``Engine(mix_adapters=True)``. The stacked-adapter hooks
  (:mod:`serifu.serving.mixed_lora`) stay installed, the row weights are rewritten in place
  per batch, and the static decoder runs CUDA-graph steps; batches are padded up to
  1/2/4/8/16/32 rows so each size's graphs are captured once (in the warm-up round).
- baseline "switching": the same server with ``Engine(mix_adapters=False)``: the worker
  takes the oldest request, adds every waiting request of the *same* heroine (at most her
  4 players) and decodes that batch; the next batch is the next oldest heroine's. One
  adapter at a time, batched per heroine, through the same stacked path and CUDA graphs
  (switching costs nothing there): the strongest switching baseline.
- baseline "switching-eager": the server before graphed serving, for the record:
  ``Engine(mix_adapters=False, stacked=False)``: PEFT ``set_adapter`` per batch, eager
  steps (``--eager-requests`` requests per client: it is slow).
- ``--peft-mixed`` adds mixed batches through PEFT's own ``adapter_names=`` loop (eager).

Before the runs, a correctness check (greedy, one row per heroine, all 8 adapters in one
batch): the graphed mixed batch against the eager mixed batch token for token, and the same
decoder reused with the adapters rotated (weights rewritten in place) against the static
decoder with graphs off; the result goes into the "switching" tokens/s record's notes.

Every reply runs its full length: EOS, newline-bearing tokens and ids outside the
stand-in tokenizer are banned (random weights would otherwise stop at random). The
tokenizer is the tiny byte-level BPE of packages/models (the hub tokenizers are not here);
the prompt template is the model's own. Completed tokens/s = completion tokens of all
requests / wall time; latency and TTFT per request.

    python bench/gpu/serve_speed.py [--models stablelm-beta-7b,gemma-3-270m] [--tiny] [--out FILE]

On the GPU (device tool, carry [".whl2"] after ``bash bench/gpu/pack-wheels``; .whl3 staged
first, see docs/benchmarks.md):

    source bench/gpu/device-env.sh; python3 bench/gpu/serve_speed.py --out $OUT/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import TINY, Record, append_results, random_model, results_path

MODELS = ["stablelm-beta-7b", "gemma-3-270m"]
START = time.time()
CAST = ["akane", "himari", "hina", "kaede", "rei", "sayaka", "shiori", "yuzuha"]
TURNS = [
    "おはよう",
    "今日は何してたの？",
    "部活どう？",
    "好きな食べ物は？",
    "一緒に帰ろう",
    "また明日ね",
]


# -- the served base and its adapters ---------------------------------------------------
def base_chatbot(model_id: str) -> Any:
    """A bare-base :class:`Chatbot` around the random-weight model (no card, no adapter)."""
    from serifu import plugins
    from serifu.inference.chatbot import Chatbot, token_rules
    from serifu.inference.decoding import TokenRules
    from serifu_models.tiny import tiny_tokenizer

    spec = plugins.get_base_model(model_id)
    tokenizer = tiny_tokenizer()
    lm = random_model(model_id, quantize=False).eval()
    lm.config.use_cache = True
    bot = Chatbot(
        model_id=model_id,
        adapter=None,
        card=None,
        template=plugins.get_prompt_template(spec.template),
        tokenizer=tokenizer,
        model=lm,
        system=None,
        add_special_tokens=bool(spec.add_special_tokens),
        generation=dict(spec.generation),
    )
    rules = token_rules(bot, None, "off")
    # Full-length replies: also ban stop tokens, newline-bearing pieces and the ids the
    # stand-in tokenizer cannot decode (the real vocabularies are larger).
    extra = set(bot._eos_ids()) | set(range(len(tokenizer), lm.config.vocab_size))
    extra |= {i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])}
    bot.rules = TokenRules(banned=sorted(set(rules.banned) | extra))
    return bot


def write_adapters(bot: Any, model_id: str, folder: Path, rank: int) -> dict[str, Path]:
    """One random LoRA per heroine (non-zero B), saved as training saves adapters."""
    from peft import LoraConfig, get_peft_model

    from serifu import plugins

    targets = list(plugins.get_base_model(model_id).lora_targets)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=targets)
    peft = get_peft_model(bot.model, config)
    paths = {}
    for i, cid in enumerate(CAST):
        gen = torch.Generator().manual_seed(1000 + i)
        with torch.no_grad():
            for name, p in peft.named_parameters():
                if "lora_A" in name or "lora_B" in name:
                    noise = torch.randn(p.shape, generator=gen) * (
                        0.02 if "lora_B" in name else 0.05
                    )
                    p.copy_(noise.to(p.device, p.dtype))
        for cfg in peft.peft_config.values():
            cfg.base_model_name_or_path = model_id
        out = folder / cid
        peft.save_pretrained(str(out), save_embedding_layers=False)
        info = {"base_model": model_id, "dataset": {"character_id": cid}, "bench": "random LoRA"}
        (out / "serifu.json").write_text(json.dumps(info), encoding="utf-8")
        paths[cid] = out
    bot.model = peft.unload()  # the plain base again; the server loads the saved adapters
    return paths


# -- the live server and its clients -------------------------------------------------------
def live_server(
    heroines: dict[str, Any], mode: dict[str, bool], max_batch: int, batch_wait: float
) -> Iterator[tuple[str, Any]]:
    from bench.serve_load import serving
    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine

    engine = Engine(
        heroines,
        max_queue=256,
        max_batch=max_batch,
        mix_adapters=mode["mix"],
        stacked=mode["stacked"],
        batch_wait=batch_wait,
    )
    for url in serving(create_app(engine), join_s=120):
        yield url, engine


async def load(url: str, players: int, requests: int, max_tokens: int) -> dict[str, Any]:
    """``players`` clients per heroine, each ``requests`` streamed chat requests in turn."""
    import httpx

    from bench.serve_load import one_request, percentile

    clients = players * len(CAST)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    results: list[dict[str, Any]] = []

    async def player(index: int, client: httpx.AsyncClient) -> None:
        heroine = CAST[index % len(CAST)]
        for r in range(requests):
            turn = TURNS[(index + r) % len(TURNS)]
            try:
                results.append(await one_request(client, url, heroine, turn, max_tokens))
            except Exception as exc:  # a lost request is a result, not a crash
                results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})

    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300.0)) as client:
        start = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(player(i, client) for i in range(clients))), timeout=600
        )
        wall = time.perf_counter() - start
    ok = [r for r in results if r["ok"]]
    lat, ttft = [r["latency"] for r in ok], [r["ttft"] for r in ok]
    tokens = sum(r["tokens"] for r in ok)
    return {
        "requests": clients * requests,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r["error"] for r in results if not r["ok"]})[:3],
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "requests_per_s": round(len(ok) / wall, 3),
        "latency_p50_s": round(percentile(lat, 0.5), 4),
        "latency_p95_s": round(percentile(lat, 0.95), 4),
        "ttft_p50_s": round(percentile(ttft, 0.5), 4),
        "ttft_p95_s": round(percentile(ttft, 0.95), 4),
        "mean_completion_tokens": round(tokens / max(len(ok), 1), 2),
    }


MODES: dict[str, dict[str, bool]] = {
    # mix: rows of several heroines per batch; stacked: the stacked-adapter hooks stay
    # installed and the static decoder (CUDA graphs) runs; else PEFT switches, eager steps
    "mixed": {"mix": True, "stacked": True},
    "switching": {"mix": False, "stacked": True},
    "switching-eager": {"mix": False, "stacked": False},
    "peft-mixed": {"mix": True, "stacked": False},
}


def serve_run(heroines: dict[str, Any], mode: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = MODES[mode]
    requests = args.eager_requests if not spec["stacked"] else args.requests
    for url, engine in live_server(heroines, spec, args.max_batch, args.batch_wait_ms / 1000):
        if spec["stacked"]:  # warm-up: the measured batch shapes, so graphs are captured now
            asyncio.run(load(url, args.players, 1, args.max_tokens))
        else:  # eager steps: kernels and allocator only
            asyncio.run(load(url, 1, 1, 4))
        batches0, rows0, pad0 = engine.batches, engine.batched_rows, engine.padded_rows
        summary = asyncio.run(load(url, args.players, requests, args.max_tokens))
        batches = engine.batches - batches0
        summary["batches"] = batches
        summary["rows_per_batch"] = round((engine.batched_rows - rows0) / max(batches, 1), 2)
        summary["pad_rows"] = engine.padded_rows - pad0
    summary["decoders"] = decoder_info(heroines)
    return summary


def decoder_info(heroines: dict[str, Any]) -> str:
    """The static decoders the run left on the model: batch x length, graphs or why not."""
    model = next(iter(heroines.values())).bot.model
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    found = lm.__dict__.get("_serifu_decoders", {})
    if not found or lm.__dict__.get("_serifu_static_off"):
        return "eager steps (no static decoder)"
    parts = []
    for (batch, length), d in found.items():
        graphs = len(d._step_graphs) + len(d._prefill_graphs) + (d._graph is not None)
        what = f"{graphs} graphs" if d.use_graph else "no graphs"
        parts.append(f"{batch}x{length} {what}" + (f" ({d.graph_error})" if d.graph_error else ""))
    return "static decoders: " + ", ".join(parts)


def graph_check(heroines: dict[str, Any], max_tokens: int) -> str:
    """Greedy, on the GPU: one row per heroine (her own prompt), all 8 adapters in one batch.
    (1) the static decoder (CUDA-graph steps) against eager steps, both through the stacked
    hooks, token for token; (2) the same decoder reused for a second batch with the adapters
    rotated (row weights rewritten in place): graphed against the same static decoder with
    graphs off, which runs the same kernels, so they must agree exactly."""
    from serifu.accel.decode import StaticDecoder
    from serifu.inference.decoding import _greedy_steps, decode_steps, left_pad
    from serifu.serving.mixed_lora import MixedLora

    bot = heroines[CAST[0]].bot
    model = bot.model
    mixed = MixedLora.for_model(model)
    if mixed is None:
        return "graph check: no stacked adapters"
    mixed.install(model)
    lm = model.get_base_model()
    lm.__dict__["_serifu_static_off"] = False
    prompts = [heroines[c].encoder.encode_prompt(TURNS[0]) for c in CAST]
    names = [heroines[c].adapter_name for c in CAST]
    kw = {
        "pad_id": int(bot.tokenizer.pad_token_id),
        "eos_ids": bot._eos_ids(),
        "params": {"do_sample": False},
        "max_new_tokens": max_tokens,
        "is_done": lambda _row, _ids: False,
        "rules": bot.rules,
    }

    def run() -> list[list[int]]:
        out: list[list[int]] = []
        for step in decode_steps(model, prompts, **kw):
            out = [list(r) for r in step]
        return out

    def agree(a: list[list[int]], b: list[list[int]]) -> str:
        same = sum(x == y for x, y in zip(a, b, strict=True))
        first = [
            next((k for k, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
            for x, y in zip(a, b, strict=True)
        ]
        diverged = [k for k in first if k is not None]
        where = f", first differing token at step {min(diverged)}" if diverged else ""
        return f"{same}/{len(a)} rows identical ({sum(map(len, a))} tokens){where}"

    mixed.set_rows(names)
    graphed = run()
    previous = os.environ.get("SERIFU_STATIC_DECODE")
    os.environ["SERIFU_STATIC_DECODE"] = "0"
    try:
        eager = run()
    finally:
        if previous is None:
            os.environ.pop("SERIFU_STATIC_DECODE")
        else:
            os.environ["SERIFU_STATIC_DECODE"] = previous
    rotated = names[1:] + names[:1]
    mixed.set_rows(rotated)
    again = run()  # the cached decoder, its graphs replayed with the new row weights
    device = str(next(model.parameters()).device)
    ids, mask = left_pad(prompts, kw["pad_id"], device)
    plain = StaticDecoder(
        lm,
        max_len=-(-(ids.shape[1] + max_tokens) // 256) * 256,
        batch_size=len(prompts),
        graph=False,
    )
    reference: list[list[int]] = []
    steps = _greedy_steps(
        plain,
        ids,
        mask,
        pad_id=kw["pad_id"],
        eos_ids=kw["eos_ids"],
        max_new_tokens=max_tokens,
        is_done=kw["is_done"],
        rules=bot.rules,
    )
    for step in steps:
        reference = [list(r) for r in step]
    del plain
    graphs = decoder_info(heroines)
    return (
        f"graph check (greedy, 8 heroines in one batch, {max_tokens} tokens): graphed vs eager "
        f"mixed batch {agree(graphed, eager)}; rotated adapters on the same decoder, graphed vs "
        f"graphs off {agree(again, reference)}; {graphs}"
    )


# -- records ------------------------------------------------------------------------------
def make_record(
    label: str,
    metric: str,
    mixed: float,
    other: float,
    unit: str,
    notes: str,
    kind: str = "switching",
) -> Record:
    return Record(
        label, "serve-8x4", metric, mixed, other, unit, repeats=1, notes=notes, baseline_kind=kind
    )


def bench_model(model_id: str, label: str, args: argparse.Namespace) -> list[Record]:
    from serifu.serving.heroines import heroines_on

    bot = base_chatbot(model_id)
    with tempfile.TemporaryDirectory(prefix="serifu-serve-speed-") as tmp:
        adapters = write_adapters(bot, model_id, Path(tmp), args.rank)
        heroines = heroines_on(bot, adapters, vocabulary="off")
    for h in heroines.values():  # her card and adapter, the bench's full-length token rules
        h.bot.rules = bot.rules
    try:
        check = graph_check(heroines, args.max_tokens)
    except Exception as exc:  # keep the speed runs; the failure is the check's result
        import traceback

        traceback.print_exc()
        check = f"graph check FAILED: {type(exc).__name__}: {str(exc)[:300]}"
    print(f"{label} {check}", flush=True)
    runs = {}
    modes = ["mixed", "switching", "switching-eager"]
    if args.peft_mixed:
        modes.append("peft-mixed")
    for mode in modes:
        if mode == "peft-mixed" and time.time() - START > args.budget_s:
            print(f"{label}: skipping the PEFT-mixed run (over --budget-s)", flush=True)
            continue
        os.environ["SERIFU_STACKED_LORA"] = "0" if mode == "peft-mixed" else "1"
        runs[mode] = serve_run(heroines, mode, args)
        print(f"{label} {mode}: {json.dumps(runs[mode], ensure_ascii=False)}", flush=True)
    os.environ.pop("SERIFU_STACKED_LORA", None)
    m = runs["mixed"]

    def batches(r: dict[str, Any]) -> str:
        return f"{r['rows_per_batch']} rows/batch, {r['batches']} batches, {r['pad_rows']} pad rows"

    def lost(r: dict[str, Any]) -> int:
        return int(r["failed"] + r["requests"] - r["completed"])

    common = (
        f"{len(CAST)} heroines x {args.players} players, {args.requests} streamed chat requests "
        f"each, max_tokens {args.max_tokens}, LoRA r={args.rank}, max batch {args.max_batch}; "
        f"serifu: mixed-adapter batches, stacked adapters always installed, static decoder "
        f"(CUDA-graph steps on a GPU) ({batches(m)}; {m['decoders']})"
    )
    baselines = {
        "switching": "one adapter at a time, per-heroine batches, through the same stacked "
        "path and static decoder (CUDA-graph steps on a GPU: the strongest switching baseline)",
        "switching-eager": f"one adapter at a time, per-heroine batches, PEFT set_adapter, "
        f"eager steps (the server before graphed serving; {args.eager_requests} requests each)",
        "peft-mixed": "mixed batches through PEFT's adapter_names= loop, eager steps",
    }
    records = []
    for kind in ("switching", "switching-eager", "peft-mixed"):
        if kind not in runs:
            continue
        s = runs[kind]
        note = f"{common}; baseline: {baselines[kind]} ({batches(s)})"
        note += f"; failed/lost mixed {lost(m)}, baseline {lost(s)}"
        if kind == "switching":
            note += f"; {check}"
        records.append(
            make_record(
                label, "tokens_per_s", m["tokens_per_s"], s["tokens_per_s"], "tok/s", note, kind
            )
        )
        if kind == "peft-mixed":
            continue
        records.append(
            make_record(
                label, "requests_per_s", m["requests_per_s"], s["requests_per_s"], "req/s", "", kind
            )
        )
        for key in ("latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s"):
            records.append(make_record(label, key, m[key], s[key], "s", "lower is better", kind))
        records.append(
            make_record(label, "failed_requests", lost(m), lost(s), "requests", "must be 0", kind)
        )
    del heroines, bot
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return records


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument(
        "--tiny", action="store_true", help="tiny-* stand-ins on the CPU (tests the harness)"
    )
    ap.add_argument("--players", type=int, default=4, help="Clients per heroine (8 heroines).")
    ap.add_argument(
        "--requests", type=int, default=2, help="Requests per client, one after another."
    )
    ap.add_argument(
        "--eager-requests",
        type=int,
        default=1,
        help="Requests per client in the eager runs (switching-eager, peft-mixed): slow.",
    )
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument(
        "--batch-wait-ms",
        type=float,
        default=10.0,
        help="Engine(batch_wait): how long a batch waits for more requests (both servers).",
    )
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank of the random adapters.")
    ap.add_argument(
        "--peft-mixed",
        action="store_true",
        help="Also run mixed batches through PEFT's adapter_names loop (eager steps).",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=150.0,
        help="Past this many seconds, the optional PEFT-mixed runs are skipped.",
    )
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default).")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    missing = [m for m in ("fastapi", "sse_starlette", "uvicorn", "httpx") if not _importable(m)]
    if missing:
        raise SystemExit(
            f"serve_speed needs {', '.join(missing)}: on the GPU, stage .whl3 first "
            "(bash bench/gpu/pack-peers; a call carrying .whl3 copies it to /tmp/w3)"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or results_path("-serve")
    failed = 0
    t0 = time.time()
    for model_id in args.models.split(","):
        real = TINY[model_id] if args.tiny else model_id
        records = bench_model(real, real if args.tiny else model_id, args)
        append_results(records, out)
        failed += sum(int(r.serifu + r.baseline) for r in records if r.metric == "failed_requests")
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
