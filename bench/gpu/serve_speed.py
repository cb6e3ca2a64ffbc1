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

- serifu (mixed): requests of *different* heroines share one decoding batch, each row with
  her own adapter, and the batch is continuous: a request that arrives while it decodes
  joins a free row at the next step (:mod:`serifu.serving.continuous`) —
  ``Engine(mix_adapters=True)``. The stacked-adapter hooks
  (:mod:`serifu.serving.mixed_lora`) stay installed, the row weights are rewritten in place,
  and the static decoder runs CUDA-graph steps (captured in the warm-up round).
- baseline "switching": ``Engine(mix_adapters=False, continuous=False)``: the worker takes
  the oldest request, adds every waiting request of the *same* heroine (at most her 4
  players) and decodes that batch to completion; the next batch is the next oldest
  heroine's. One adapter at a time, batched per heroine, through the same stacked path and
  CUDA graphs (switching costs nothing there): session 5's switching baseline.
- baseline "switching-continuous": one heroine per batch, continuously batched.
- baseline "mixed-batched": mixed batches run to completion (session 5's mixed server,
  padded to 1/2/4/8/16/32 rows, batch wait 10 ms).
- baseline "switching-eager" (``--eager``): the server before graphed serving:
  ``Engine(mix_adapters=False, stacked=False)``: PEFT ``set_adapter`` per batch, eager
  steps (``--eager-requests`` requests per client: it is slow).
- ``--peft-mixed`` adds mixed batches through PEFT's own ``adapter_names=`` loop (eager).

Before the runs, correctness checks (greedy, one row per heroine, all 8 adapters in one
batch): the graphed mixed batch against the eager mixed batch token for token, and the same
decoder reused with the adapters rotated against the static decoder with graphs off (in
the "switching" tokens/s record's notes); the logits check: teacher-forced, the graphed
step's logits against the graphs-off and the eager step on the same inputs (max abs/rel
difference, argmax mismatches, and mismatches where the top-2 margin exceeds
``--margin-tol``: records ``graph-check-graphs_off`` / ``graph-check-eager``); and the
continuous check: a request alone vs admitted mid-batch (identical text and length).

Every reply runs its full length: EOS, newline-bearing tokens and ids outside the
stand-in tokenizer are banned (random weights would otherwise stop at random). The
tokenizer is the tiny byte-level BPE of packages/models (the hub tokenizers are not here);
the prompt template is the model's own. Completed tokens/s = completion tokens of all
requests / wall time; latency and TTFT per request.

    python bench/gpu/serve_speed.py [--models stablelm-beta-7b,gemma-3-270m] [--tiny] [--out FILE]
        [--modes mixed-batched,switching] [--stream-interval-ms 0]

Each run's notes say where the server's time went ("phases"): for the host-pick static
loop (sampled requests, as here), the prompt pass per batch, the worker blocked on the
device per step ("device wait": the device is the bottleneck) and its host time per step
(it overlaps the device's next step), and the server's CPU per step: the worker thread
(engine events included) and the other threads (the event loop: HTTP, SSE streaming).

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
    heroines: dict[str, Any],
    mode: dict[str, bool],
    max_batch: int,
    batch_wait: float,
    stream_interval: float = 0.0,
    max_tokens: int = 48,
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
        continuous=mode["continuous"],
        batch_wait=batch_wait,
        stream_interval=stream_interval,
        prefix_cache=mode.get("prefix", True),
    )
    if mode["stacked"]:  # as `serifu serve` does: every batch size's graphs before clients
        engine.warm_up(max_tokens=max_tokens, turn=TURNS[0])
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


_CLIENTS: Any = None
"""A one-process pool running the clients (``--clients process``): their HTTP and JSON work
then does not compete with the server's threads for this process's GIL, as with real
clients on other processes or machines."""


def run_load(url: str, players: int, requests: int, max_tokens: int) -> dict[str, Any]:
    if _CLIENTS is not None:
        return dict(_CLIENTS.apply(_load_now, (url, players, requests, max_tokens)))
    return _load_now(url, players, requests, max_tokens)


def _load_now(url: str, players: int, requests: int, max_tokens: int) -> dict[str, Any]:
    return asyncio.run(load(url, players, requests, max_tokens))


MODES: dict[str, dict[str, bool]] = {
    # mix: rows of several heroines per batch; stacked: the stacked-adapter hooks stay
    # installed and the static decoder (CUDA graphs) runs; else PEFT switches, eager steps;
    # continuous: requests join the running batch at its next step (else a batch runs to
    # completion and new requests wait for the next one)
    "mixed": {"mix": True, "stacked": True, "continuous": True},
    "mixed-batched": {"mix": True, "stacked": True, "continuous": False},
    "switching": {"mix": False, "stacked": True, "continuous": False},
    "switching-continuous": {"mix": False, "stacked": True, "continuous": True},
    "switching-eager": {"mix": False, "stacked": False, "continuous": False},
    "peft-mixed": {"mix": True, "stacked": False, "continuous": False},
    # ablations: every prompt run whole (no cached system prompts)
    "mixed-batched-noprefix": {
        "mix": True,
        "stacked": True,
        "continuous": False,
        "prefix": False,
    },
    "switching-noprefix": {"mix": False, "stacked": True, "continuous": False, "prefix": False},
}


def serve_run(heroines: dict[str, Any], mode: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = MODES[mode]
    requests = args.eager_requests if not spec["stacked"] else args.requests
    interval = args.stream_interval_ms / 1000
    for url, engine in live_server(
        heroines, spec, args.max_batch, args.batch_wait_ms / 1000, interval, args.max_tokens
    ):
        if spec["stacked"]:  # warm-up: the measured batch shapes, so graphs are captured now
            run_load(url, args.players, 1, args.max_tokens)
        else:  # eager steps: kernels and allocator only
            run_load(url, 1, 1, 4)
        from serifu.inference.decoding import TIMES

        before = _counters(engine)
        events_before, worker_before = engine.event_s, engine.worker_cpu_s
        TIMES.reset()
        cpu_before = time.process_time()
        summary = run_load(url, args.players, requests, args.max_tokens)
        cpu = {
            "process": time.process_time() - cpu_before,
            "worker": engine.worker_cpu_s - worker_before,
            "events": engine.event_s - events_before,
        }
        got = {k: v - before[k] for k, v in _counters(engine).items()}
        summary["phases"] = phases(TIMES.summary(), cpu, got)
        summary["batches"] = got["batches"]
        summary["rows_per_batch"] = round(got["batched_rows"] / max(got["batches"], 1), 2)
        summary["pad_rows"] = got["padded_rows"]
        summary["steps"] = got["steps"]
        # how full the decoding steps were: rows with a client waiting, mean over steps
        summary["rows_per_step"] = round(got["step_rows"] / max(got["steps"], 1), 2)
        summary["admitted_rows"] = got["admitted_rows"]  # joined a running batch
        summary["shifts"] = got["shifts"]
        if engine.continuous_error:  # it failed and the engine fell back to batches
            summary["continuous_error"] = engine.continuous_error
    summary["decoders"] = decoder_info(heroines)
    return summary


def phases(times: dict[str, float], cpu: dict[str, float], got: dict[str, int]) -> str:
    """Where the server's time went. The host-pick static loop (sampled requests; the greedy
    device loop is not timed): prompt pass per batch (to the first tokens on the host), the
    worker blocked on the device per step, and its host time per step (recording, text
    stops, events; it overlaps the device's next step; on the CPU it includes the compute).
    CPU per step: the worker thread (batch-at-a-time batches) and the rest of the server
    process (the event loop: HTTP and streaming, which competes with it for the GIL)."""
    steps = max(got["steps"], 1)
    other = cpu["process"] - cpu["worker"]
    out = (
        f"server CPU per step: worker {1e3 * cpu['worker'] / steps:.3f} ms (engine events "
        f"{1e3 * cpu['events'] / steps:.3f}), other threads {1e3 * other / steps:.3f} ms"
    )
    if not times["calls"]:
        return f"phases: not timed (no host-pick static decoding); {out}"
    return (
        f"phases over {times['calls']} batches / {times['steps']} steps: prefill "
        f"{times['prefill_ms_per_call']} ms/batch, device wait {times['wait_ms_per_step']} "
        f"ms/step, host {times['host_ms_per_step']} ms/step; {out}"
    )


def _counters(engine: Any) -> dict[str, int]:
    names = ("batches", "batched_rows", "padded_rows", "steps", "step_rows", "admitted_rows")
    return {n: int(getattr(engine, n)) for n in (*names, "shifts")}


def decoder_info(heroines: dict[str, Any]) -> str:
    """The static decoders the run left on the model: batch x length, graphs or why not."""
    model = next(iter(heroines.values())).bot.model
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    found = lm.__dict__.get("_serifu_decoders", {})
    if not found or lm.__dict__.get("_serifu_static_off"):
        return "eager steps (no static decoder)"
    parts = []
    for key, d in found.items():
        batch, length = key[:2]  # (batch, length[, vocabulary])
        graphs = len(d._step_graphs) + len(d._prefill_graphs) + (d._graph is not None)
        what = f"{graphs} graphs" if d.use_graph else "no graphs"
        parts.append(f"{batch}x{length} {what}" + (f" ({d.graph_error})" if d.graph_error else ""))
    return "static decoders: " + ", ".join(parts)


def stacked(heroines: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """(bot, model, stacked adapters installed) of the served base; None without them."""
    from serifu.serving.mixed_lora import MixedLora

    bot = heroines[CAST[0]].bot
    mixed = MixedLora.for_model(bot.model)
    if mixed is None:
        return None
    mixed.install(bot.model)
    return bot, bot.model, mixed


def rows_agree(a: list[list[int]], b: list[list[int]]) -> str:
    """How many rows of two runs' tokens are identical, and the first step that differs."""
    same = sum(x == y for x, y in zip(a, b, strict=True))
    first = [
        next((k for k, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
        for x, y in zip(a, b, strict=True)
    ]
    diverged = [k for k in first if k is not None]
    where = f", first differing token at step {min(diverged)}" if diverged else ""
    return f"{same}/{len(a)} rows identical ({sum(map(len, a))} tokens){where}"


def prefix_check(heroines: dict[str, Any], max_tokens: int) -> str:
    """One row per heroine, all 8 adapters in one batch, greedy with a repetition penalty (the
    host-pick loop, where cached prompt prefixes apply): every prompt run whole against the
    same batch with each heroine's system prompt copied from the prefix cache (after a pass
    that filled it), token for token."""
    from serifu.accel.prefix import prefix_cache
    from serifu.inference.decoding import decode_steps
    from serifu.serving.engine import Engine

    found = stacked(heroines)
    if found is None:
        return "prefix check: no stacked adapters"
    bot, model, mixed = found
    engine = Engine(heroines)
    prompts = [heroines[c].encoder.encode_prompt(TURNS[1]) for c in CAST]
    specs = [engine._prefix_spec(heroines[c], p) for c, p in zip(CAST, prompts, strict=True)]
    mixed.set_rows([heroines[c].adapter_name for c in CAST])
    kw: dict[str, Any] = {
        "pad_id": int(bot.tokenizer.pad_token_id),
        "eos_ids": bot._eos_ids(),
        "params": {"do_sample": False, "repetition_penalty": 1.05},
        "max_new_tokens": max_tokens,
        "is_done": lambda _row, _ids: False,
        "rules": bot.rules,
    }

    def run(prefixes: Any) -> list[list[int]]:
        out: list[list[int]] = []
        for step in decode_steps(model, prompts, prefixes=prefixes, **kw):
            out = [list(r) for r in step]
        return out

    whole = run(None)
    run(specs)  # fills the cache
    cache = prefix_cache(model)
    hits = cache.hits
    cached = run(specs)
    shared = [s[1] if s else 0 for s in specs]
    return (
        f"prefix check (greedy + repetition penalty, {max_tokens} tokens): whole prompts vs "
        f"cached system prompts ({min(shared)}-{max(shared)} of {min(map(len, prompts))}-"
        f"{max(map(len, prompts))} tokens, {cache.hits - hits} rows copied) "
        + rows_agree(whole, cached)
    )


def graph_check(heroines: dict[str, Any], max_tokens: int) -> str:
    """Greedy, on the GPU: one row per heroine (her own prompt), all 8 adapters in one batch.
    (1) the static decoder (CUDA-graph steps) against eager steps, both through the stacked
    hooks, token for token; (2) the same decoder reused for a second batch with the adapters
    rotated (row weights rewritten in place): graphed against the same static decoder with
    graphs off, which runs the same kernels, so they must agree exactly."""
    from serifu.accel.decode import StaticDecoder
    from serifu.inference.decoding import _greedy_steps, decode_steps, left_pad

    found = stacked(heroines)
    if found is None:
        return "graph check: no stacked adapters"
    bot, model, mixed = found
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
        f"mixed batch {rows_agree(graphed, eager)}; rotated adapters on the same decoder, graphed vs "
        f"graphs off {rows_agree(again, reference)}; {graphs}"
    )


def logits_check(heroines: dict[str, Any], steps: int, tol: float) -> dict[str, Any]:
    """Greedy, one row per heroine (her own prompt and adapter): the graphed static decoder's
    step against (a) the same decoder with graphs off (the same kernels) and (b) the eager
    server's step (``_EagerStep``, dynamic cache), teacher-forced: every step of all three
    is fed the same token (the graphs-off decoder's greedy pick), so the inputs are equal and
    differences do not compound. Per comparison: the largest absolute logit difference, that
    over the largest logit magnitude, all argmax mismatches, and the mismatches where the
    reference's top-2 margin exceeds ``tol`` (a bug; below it, bf16 near-ties)."""
    from serifu.accel.decode import StaticDecoder
    from serifu.inference.decoding import _EagerStep, left_pad
    from serifu.serving.mixed_lora import MixedLora

    bot = heroines[CAST[0]].bot
    model = bot.model
    mixed = MixedLora.for_model(model)
    if mixed is None:
        return {"error": "no stacked adapters"}
    mixed.install(model)
    lm = model.get_base_model()
    lm.__dict__["_serifu_static_off"] = False
    prompts = [heroines[c].encoder.encode_prompt(TURNS[1]) for c in CAST]
    mixed.set_rows([heroines[c].adapter_name for c in CAST])
    device = str(next(model.parameters()).device)
    ids, mask = left_pad(prompts, int(bot.tokenizer.pad_token_id), device)
    max_len = -(-(ids.shape[1] + steps + 1) // 256) * 256
    graphed = StaticDecoder(lm, max_len=max_len, batch_size=len(prompts))
    plain = StaticDecoder(lm, max_len=max_len, batch_size=len(prompts), graph=False)
    eager = _EagerStep(model, bot.rules)
    zero = {"max_abs": 0.0, "max_rel": 0.0, "mismatch": 0, "decisive": 0, "decisive_mismatch": 0}
    stats: dict[str, dict[str, Any]] = {k: dict(zero) for k in ("graphs_off", "eager")}
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        graphed.prefill(ids, mask)
        ref = plain.prefill(ids, mask)
        eager(ids, mask, positions)
        tokens = bot.rules.apply(ref).argmax(-1)
        for _ in range(steps):
            g = bot.rules.apply(graphed.step(tokens))
            ref = bot.rules.apply(plain.step(tokens))
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            slow = bot.rules.apply(eager(tokens[:, None], mask, positions))
            finite = torch.isfinite(ref)  # banned tokens are -inf in all three
            top2 = ref.masked_fill(~finite, float("-inf")).topk(2, dim=-1).values
            margin = top2[:, 0] - top2[:, 1]
            scale = float(ref[finite].abs().max())
            for key, other in (("graphs_off", ref), ("eager", slow)):
                diff = (g - other).abs().masked_fill(~finite, 0.0)
                st = stats[key]
                st["max_abs"] = max(st["max_abs"], float(diff.max()))
                st["max_rel"] = max(st["max_rel"], float(diff.max()) / max(scale, 1e-9))
                wrong = g.argmax(-1) != other.argmax(-1)
                decisive = margin > tol
                st["mismatch"] += int(wrong.sum())
                st["decisive"] += int(decisive.sum())
                st["decisive_mismatch"] += int((wrong & decisive).sum())
            tokens = ref.argmax(-1)
    rows = len(prompts)
    for st in stats.values():
        st["positions"] = rows * steps
        st["max_abs"] = round(st["max_abs"], 5)
        st["max_rel"] = round(st["max_rel"], 6)
    del graphed, plain, eager
    return {"tol": tol, "steps": steps, "rows": rows, **stats}


def continuous_check(heroines: dict[str, Any], max_tokens: int, max_batch: int) -> str:
    """Greedy, through the server's continuous batch (graphed steps on a GPU): a request
    alone, then the same request admitted 3 steps into a batch of two other heroines'
    requests: identical text, length and log-probability (the rows must not depend on
    their neighbours)."""
    from serifu.serving.engine import Engine, Job

    engine = Engine(heroines, max_batch=max_batch, continuous=True)

    def job(cid: str, turn: str) -> Any:
        h = heroines[cid]
        return Job(
            h,
            [h.encoder.encode_prompt(turn)],
            max_tokens,
            {"do_sample": False},
            [],
            None,
            True,
            None,  # type: ignore[arg-type]
        )

    def run(first: Any, arrivals: dict[int, list[Any]]) -> dict[int, tuple[str, int, float]]:
        batch = engine._continuous(first)
        if batch is None:
            raise RuntimeError("no continuous batch here (static decoder off?)")
        high = max(len(p) for js in arrivals.values() for j in js for p in j.prompts)
        batch.begin([first], high)
        got: dict[int, list[Any]] = {}
        step = 0
        while True:
            for j in arrivals.get(step, []):
                for jj, e in batch.admit(j):
                    got.setdefault(id(jj), []).append(e)
            if not batch.active and step >= max(arrivals):
                break
            for jj, e in batch.step():
                got.setdefault(id(jj), []).append(e)
            step += 1
        return {
            k: ("".join(e.text for e in v if e.kind == "delta"), v[-1].n_tokens, v[-1].logprob)
            for k, v in got.items()
        }

    x, a, b = job(CAST[0], TURNS[2]), job(CAST[1], TURNS[3]), job(CAST[2], TURNS[4])
    alone = run(x, {0: [x]})[id(x)]
    mid = run(a, {0: [a, b], 3: [x]})[id(x)]
    same = alone[:2] == mid[:2]
    return (
        f"continuous check (greedy, {max_tokens} tokens, decoder of {max_batch} rows): alone vs "
        f"admitted mid-batch {'identical' if same else 'DIFFERENT'} text and length "
        f"({alone[1]} tokens), log-probability difference {abs(alone[2] - mid[2]):.3g}"
    )


# -- records ------------------------------------------------------------------------------
REPEATS = 1  # set from --repeats


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
        label,
        "serve-8x4",
        metric,
        mixed,
        other,
        unit,
        repeats=REPEATS,
        notes=notes,
        baseline_kind=kind,
    )


def bench_model(model_id: str, label: str, args: argparse.Namespace) -> list[Record]:
    from serifu.serving.heroines import heroines_on

    bot = base_chatbot(model_id)
    with tempfile.TemporaryDirectory(prefix="serifu-serve-speed-") as tmp:
        adapters = write_adapters(bot, model_id, Path(tmp), args.rank)
        heroines = heroines_on(bot, adapters, vocabulary="off")
    for h in heroines.values():  # her card and adapter, the bench's full-length token rules
        h.bot.rules = bot.rules
    checks: dict[str, Any] = {
        "graph": "graph check not run (--no-checks)",
        "logits": "not run (--no-checks)",
        "continuous": "continuous check not run (--no-checks)",
        "prefix": "prefix check not run (--no-checks)",
    }
    calls: list[tuple[str, Any, tuple[Any, ...]]] = [
        ("graph", graph_check, (heroines, args.max_tokens)),
        ("logits", logits_check, (heroines, args.max_tokens, args.margin_tol)),
        ("continuous", continuous_check, (heroines, args.max_tokens, args.max_batch)),
        ("prefix", prefix_check, (heroines, args.max_tokens)),
    ]
    if args.no_checks:
        calls = []
    for name, call, call_args in calls:
        try:
            checks[name] = call(*call_args)
        except Exception as exc:  # keep the speed runs; the failure is the check's result
            import traceback

            traceback.print_exc()
            checks[name] = f"{name} check FAILED: {type(exc).__name__}: {str(exc)[:300]}"
        print(f"{label} {name}: {checks[name]}", flush=True)
    runs: dict[str, dict[str, Any]] = {}
    modes = [m for m in args.modes.split(",") if m]
    if not ({"mixed", "mixed-batched"} & set(modes)) or len(modes) < 2:
        raise SystemExit("--modes needs mixed or mixed-batched and a baseline")
    if args.eager:
        modes.append("switching-eager")
    if args.peft_mixed:
        modes.append("peft-mixed")
    tries: dict[str, list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):  # modes interleaved, so drift hits every mode alike
        for mode in modes:
            slow = mode in ("peft-mixed", "switching-eager")
            if slow and (repeat or time.time() - START > args.budget_s):
                if not repeat:
                    print(f"{label}: skipping the {mode} run (over --budget-s)", flush=True)
                continue
            os.environ["SERIFU_STACKED_LORA"] = "0" if mode == "peft-mixed" else "1"
            one = serve_run(heroines, mode, args)
            tries.setdefault(mode, []).append(one)
            print(
                f"{label} {mode} #{repeat + 1}: {json.dumps(one, ensure_ascii=False)}", flush=True
            )
    os.environ.pop("SERIFU_STACKED_LORA", None)
    for mode, done in tries.items():  # the median run by tokens/s stands for the mode
        ordered = sorted(done, key=lambda r: r["tokens_per_s"])
        runs[mode] = dict(ordered[(len(ordered) - 1) // 2])
        runs[mode]["tries"] = [r["tokens_per_s"] for r in done]
    serifu = "mixed" if "mixed" in runs else "mixed-batched"
    m = runs[serifu]

    def batches(r: dict[str, Any]) -> str:
        return (
            f"median of {len(r['tries'])} runs, tok/s {r['tries']}; "
            f"{r['rows_per_step']} rows/step over {r['steps']} steps, "
            f"{r['rows_per_batch']} rows/batch, {r['batches']} batches, "
            f"{r['admitted_rows']} rows admitted mid-batch, {r['pad_rows']} pad rows"
        )

    def lost(r: dict[str, Any]) -> int:
        return int(r["failed"] + r["requests"] - r["completed"])

    common = (
        f"{len(CAST)} heroines x {args.players} players, {args.requests} streamed chat requests "
        f"each (clients: {'own process' if args.clients == 'process' else 'in the server process'}), "
        f"max_tokens {args.max_tokens}, LoRA r={args.rank}, max batch {args.max_batch}, "
        f"stream interval {args.stream_interval_ms} ms (batch-at-a-time servers); "
        + (
            "serifu: continuous batching of mixed-adapter rows (requests join the running "
            "batch at its next step)"
            if serifu == "mixed"
            else "serifu: the default server, mixed-adapter batches run to completion "
            f"(batch wait {args.batch_wait_ms} ms, padded to 1/2/4/8/16/32 rows)"
        )
        + f", system prompts cached ({'on' if MODES[serifu].get('prefix', True) else 'off'})"
        + f", stacked adapters always installed, static decoder (CUDA-graph "
        f"steps on a GPU) ({batches(m)}; {m['shifts']} cache shifts; {m['decoders']}; "
        f"{m['phases']})"
    )
    baselines = {
        "switching": "one adapter at a time, per-heroine batches run to completion, through "
        "the same stacked path and static decoder (CUDA-graph steps on a GPU: session 5's "
        "switching baseline)",
        "switching-continuous": "one adapter at a time with continuous batching (a batch "
        "takes its heroine's requests at every step; it drains when another heroine's "
        "request is the oldest waiting), same stacked path and static decoder",
        "mixed-batched": "mixed-adapter batches run to completion, batch wait "
        f"{args.batch_wait_ms} ms, padded to 1/2/4/8/16/32 rows (session 5's server)",
        "switching-eager": f"one adapter at a time, per-heroine batches, PEFT set_adapter, "
        f"eager steps (the server before graphed serving; {args.eager_requests} requests each)",
        "peft-mixed": "mixed batches through PEFT's adapter_names= loop, eager steps",
        "mixed-batched-noprefix": "the default server with every prompt run whole (no cached "
        "system prompts: Engine(prefix_cache=False); an ablation)",
        "switching-noprefix": "switching with every prompt run whole (session 7's switching)",
    }
    logits = checks["logits"]
    records = []
    for kind in (
        "switching",
        "switching-continuous",
        "mixed-batched",
        "switching-eager",
        "peft-mixed",
        "mixed-batched-noprefix",
        "switching-noprefix",
    ):
        if kind not in runs or kind == serifu:
            continue
        s = runs[kind]
        note = f"{common}; baseline: {baselines[kind]} ({batches(s)}; {s['phases']})"
        note += f"; failed/lost mixed {lost(m)}, baseline {lost(s)}"
        for who, r in (("mixed", m), ("baseline", s)):
            if r.get("continuous_error"):
                note += f"; {who}: CONTINUOUS BATCHING FAILED, fell back: {r['continuous_error']}"
        if kind == "switching":
            note += (
                f"; {checks['graph']}; {checks['continuous']}; {checks['prefix']}; logits check: "
            )
            note += json.dumps(logits)
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
            make_record(
                label,
                "rows_per_step",
                m["rows_per_step"],
                s["rows_per_step"],
                "rows",
                "mean rows with a client waiting per decoding step",
                kind,
            )
        )
        records.append(
            make_record(label, "failed_requests", lost(m), lost(s), "requests", "must be 0", kind)
        )
    if isinstance(logits, dict) and "graphs_off" in logits:
        for key in ("graphs_off", "eager"):
            st = logits[key]
            what = (
                f"graphed step vs {'the same static decoder with graphs off' if key == 'graphs_off' else 'the eager step (dynamic cache)'}, "
                f"teacher-forced, {logits['rows']} rows x {logits['steps']} steps, top-2 margin tol {logits['tol']}"
            )
            kind = f"graph-check-{key}"
            records += [
                make_record(label, "logits_max_abs_diff", st["max_abs"], 0.0, "logit", what, kind),
                make_record(label, "logits_max_rel_diff", st["max_rel"], 0.0, "ratio", what, kind),
                make_record(
                    label,
                    "token_mismatches",
                    st["mismatch"],
                    st["positions"],
                    "tokens",
                    f"{what}: argmax mismatches (serifu) of all positions (baseline)",
                    kind,
                ),
                make_record(
                    label,
                    "token_mismatches_over_margin",
                    st["decisive_mismatch"],
                    st["decisive"],
                    "tokens",
                    f"{what}: mismatches where the margin > tol (serifu; must be 0) "
                    "of the positions with margin > tol (baseline)",
                    kind,
                ),
            ]
    del heroines, bot, calls
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
    ap.add_argument(
        "--modes",
        default="mixed,mixed-batched,switching,switching-continuous",
        help="Server modes to run (comma list; the serifu column is mixed, else mixed-batched).",
    )
    ap.add_argument(
        "--repeats", type=int, default=1, help="Runs per mode (interleaved); records the median."
    )
    ap.add_argument(
        "--no-checks", action="store_true", help="Skip the graph, logits and continuous checks."
    )
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument(
        "--batch-wait-ms",
        type=float,
        default=10.0,
        help="Engine(batch_wait): how long a batch waits for more requests (both servers).",
    )
    ap.add_argument(
        "--stream-interval-ms",
        type=float,
        default=0.0,
        help="Engine(stream_interval) for every server: batch-at-a-time batches hand text "
        "over at most this often (0: every step, the default server).",
    )
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank of the random adapters.")
    ap.add_argument(
        "--eager",
        action="store_true",
        help="Also run the eager switching server (PEFT set_adapter; slow, session 5 has it).",
    )
    ap.add_argument(
        "--margin-tol",
        type=float,
        default=0.25,
        help="Logits check: count a graphed-vs-eager token mismatch as a bug only where the "
        "top-2 margin exceeds this (below it: bf16 near-ties).",
    )
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
    ap.add_argument(
        "--clients",
        choices=("process", "inline"),
        default="process",
        help="Run the load clients in a process of their own (default) or in the server's.",
    )
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
    global REPEATS
    REPEATS = max(1, args.repeats)
    args.repeats = REPEATS
    out = args.out or results_path("-serve")
    failed = 0
    t0 = time.time()
    global _CLIENTS
    if args.clients == "process":
        import multiprocessing

        _CLIENTS = multiprocessing.get_context("spawn").Pool(1)
    try:
        for model_id in args.models.split(","):
            real = TINY[model_id] if args.tiny else model_id
            records = bench_model(real, real if args.tiny else model_id, args)
            append_results(records, out)
            failed += sum(
                int(r.serifu + r.baseline) for r in records if r.metric == "failed_requests"
            )
    finally:
        if _CLIENTS is not None:
            _CLIENTS.close()
            _CLIENTS.join()
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
