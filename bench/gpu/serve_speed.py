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
  row with her own adapter (stacked adapters, :mod:`serifu.serving.mixed_lora`) —
  ``Engine(mix_adapters=True)``.
- baseline (switching): the same server with ``Engine(mix_adapters=False)``: the worker
  takes the oldest request, adds every waiting request of the *same* heroine (at most her
  4 players), activates her adapter (``set_adapter``) and decodes that batch; the next batch
  is the next oldest heroine's. One adapter at a time, batched per heroine — the fair
  baseline.
- a third run (``baseline_kind`` "peft-mixed", skip with ``--no-peft-mixed``): mixed
  batches through PEFT's own ``adapter_names=`` loop, to show what stacking buys.

All run eager decoding steps (no CUDA graphs: the server turns them off when adapters are
switched or mixed). Every reply runs its full length: EOS, newline-bearing tokens and ids
outside the stand-in tokenizer are banned (random weights would otherwise stop at random).
The tokenizer is the tiny byte-level BPE of packages/models (the hub tokenizers are not
here); the prompt template is the model's own. Completed tokens/s = completion tokens of
all requests / wall time; latency and TTFT per request.

    python bench/gpu/serve_speed.py [--models stablelm-beta-7b,gemma-3-270m] [--tiny] [--out FILE]
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
    heroines: dict[str, Any], mix: bool, max_batch: int, batch_wait: float
) -> Iterator[tuple[str, Any]]:
    from bench.serve_load import serving
    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine

    engine = Engine(
        heroines, max_queue=256, max_batch=max_batch, mix_adapters=mix, batch_wait=batch_wait
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


def serve_run(heroines: dict[str, Any], mix: bool, args: argparse.Namespace) -> dict[str, Any]:
    for url, engine in live_server(heroines, mix, args.max_batch, args.batch_wait_ms / 1000):
        # warm-up: one request per heroine (kernels, allocator), not measured
        asyncio.run(load(url, 1, 1, 4))
        batches0, rows0 = engine.batches, engine.batched_rows
        summary = asyncio.run(load(url, args.players, args.requests, args.max_tokens))
        batches = engine.batches - batches0
        summary["batches"] = batches
        summary["rows_per_batch"] = round((engine.batched_rows - rows0) / max(batches, 1), 2)
    return summary


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
    runs = {}
    modes = [("mixed", True), ("switching", False)]
    if args.peft_mixed:
        modes.append(("peft-mixed", True))
    for mode, mix in modes:
        if mode == "peft-mixed" and time.time() - START > args.budget_s:
            print(f"{label}: skipping the PEFT-mixed run (over --budget-s)", flush=True)
            continue
        os.environ["SERIFU_STACKED_LORA"] = "0" if mode == "peft-mixed" else "1"
        runs[mode] = serve_run(heroines, mix, args)
        print(f"{label} {mode}: {json.dumps(runs[mode], ensure_ascii=False)}", flush=True)
    os.environ.pop("SERIFU_STACKED_LORA", None)
    m, s = runs["mixed"], runs["switching"]
    lost = {k: (r["failed"], r["requests"] - r["completed"]) for k, r in runs.items()}
    setup = (
        f"{len(CAST)} heroines x {args.players} players, {args.requests} streamed chat requests each, "
        f"max_tokens {args.max_tokens}, LoRA r={args.rank}, max batch {args.max_batch}, eager steps; "
        f"serifu: mixed-adapter batches ({m['rows_per_batch']} rows/batch, {m['batches']} batches); "
        f"baseline: one adapter at a time, per-heroine batches ({s['rows_per_batch']} rows/batch, "
        f"{s['batches']} batches); failed/lost mixed {lost['mixed']}, switching {lost['switching']}"
    )
    records = [
        make_record(label, "tokens_per_s", m["tokens_per_s"], s["tokens_per_s"], "tok/s", setup),
        make_record(label, "requests_per_s", m["requests_per_s"], s["requests_per_s"], "req/s", ""),
    ]
    for key in ("latency_p50_s", "latency_p95_s", "ttft_p50_s", "ttft_p95_s"):
        records.append(make_record(label, key, m[key], s[key], "s", "lower is better"))
    records.append(
        make_record(
            label,
            "failed_requests",
            m["failed"] + m["requests"] - m["completed"],
            s["failed"] + s["requests"] - s["completed"],
            "requests",
            "must be 0",
        )
    )
    if "peft-mixed" in runs:  # what the stacked adapters buy over PEFT's per-adapter loop
        p = runs["peft-mixed"]
        note = (
            f"serifu: stacked adapters, one gather per layer; baseline: PEFT mixed-adapter "
            f"batch (adapter_names=, a loop per adapter), same server and batches "
            f"({p['rows_per_batch']} rows/batch); failed/lost {p['failed']}, "
            f"{p['requests'] - p['completed']}"
        )
        records.append(
            make_record(
                label,
                "tokens_per_s",
                m["tokens_per_s"],
                p["tokens_per_s"],
                "tok/s",
                note,
                kind="peft-mixed",
            )
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
        "--requests", type=int, default=3, help="Requests per client, one after another."
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
        "--no-peft-mixed",
        dest="peft_mixed",
        action="store_false",
        help="Skip the third run: mixed batches through PEFT's adapter_names loop.",
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
