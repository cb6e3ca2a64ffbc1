"""Load test for ``serifu serve``: C concurrent clients x R streamed chat requests on 127.0.0.1.

Reports throughput, p50/p95 latency and time to first token, and fails (exit 1) when any
request is lost or fails. Bounded: 127.0.0.1 only, a timeout per request and overall.

    .venv/bin/python bench/serve_load.py --model tiny-gemma --character akane --character rei \\
        [--clients 64] [--requests 5] [--max-tokens 16] [--save]
    .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8000 --character akane

Without ``--url`` it starts the server in this process on an ephemeral port (CPU by default).
``--save`` writes bench/results/serve-load-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["こんにちは", "今日は何してたの？", "部活どう？", "好きな食べ物は？", "また明日ね"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def local_server(args: argparse.Namespace) -> Iterator[str]:
    import torch

    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine
    from serifu.serving.heroines import load_heroines

    torch.set_num_threads(args.threads)
    heroines = load_heroines(
        args.character, model=args.model, device=args.device, vocabulary=args.vocabulary
    )
    engine = Engine(heroines, max_queue=args.clients * 2, max_batch=args.max_batch)
    try:
        yield from serving(create_app(engine), join_s=60)
    finally:
        print(
            f"server: {engine.batches} batches, {engine.batched_rows} rows "
            f"({engine.batched_rows / max(engine.batches, 1):.1f} rows/batch)",
            file=sys.stderr,
        )


def serving(app: Any, join_s: float) -> Iterator[str]:
    """``app`` on a live uvicorn server on a free port of 127.0.0.1 (a thread), as a one-item
    generator: its base URL while the caller's loop body runs; stopped afterwards."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(join_s)


async def one_request(
    client: Any, url: str, model: str, query: str, max_tokens: int
) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": query}],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    done = False
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            return {"ok": False, "error": f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"}
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                return {"ok": False, "error": chunk["error"]["message"]}
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                if first is None and (choice.get("delta") or {}).get("content"):
                    first = time.perf_counter()
    end = time.perf_counter()
    if not done:
        return {"ok": False, "error": "stream ended without [DONE]"}
    return {"ok": True, "latency": end - start, "ttft": (first or end) - start, "tokens": tokens}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    timeout = httpx.Timeout(args.timeout)
    results: list[dict[str, Any]] = []

    async def client_loop(index: int, client: httpx.AsyncClient) -> None:
        for r in range(args.requests):
            model = args.character[(index + r) % len(args.character)]
            query = QUERIES[(index + r) % len(QUERIES)]
            try:
                results.append(await one_request(client, url, model, query, args.max_tokens))
            except Exception as exc:  # a lost request is a result, not a crash
                results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(client_loop(i, client) for i in range(args.clients))),
            timeout=args.total_timeout,
        )
        wall = time.perf_counter() - start
    ok = [r for r in results if r["ok"]]
    lat = [r["latency"] for r in ok]
    ttft = [r["ttft"] for r in ok]
    tokens = sum(r["tokens"] for r in ok)
    return {
        "requests": args.clients * args.requests,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "errors": sorted({r["error"] for r in results if not r["ok"]})[:5],
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(ok) / wall, 2),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "latency_p50_s": round(percentile(lat, 0.5), 3),
        "latency_p95_s": round(percentile(lat, 0.95), 3),
        "ttft_p50_s": round(percentile(ttft, 0.5), 3),
        "ttft_p95_s": round(percentile(ttft, 0.95), 3),
        "mean_completion_tokens": round(tokens / max(len(ok), 1), 1),
        "latency_mean_s": round(statistics.fmean(lat), 3) if lat else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="A running server on 127.0.0.1 (default: start one here).")
    parser.add_argument("--model", default="tiny-gemma")
    parser.add_argument("--character", action="append", default=[])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--vocabulary", default="auto", help="auto|on|off (off: mixed batches)")
    parser.add_argument("--timeout", type=float, default=300.0, help="Per request, seconds.")
    parser.add_argument("--total-timeout", type=float, default=1800.0, help="Whole run, seconds.")
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    args.character = args.character or ["akane"]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("this load test only targets 127.0.0.1")
    if args.url:
        summary = asyncio.run(run(args.url.rstrip("/").removesuffix("/v1"), args))
    else:
        for url in local_server(args):
            summary = asyncio.run(run(url, args))
    summary.update(
        model=args.model if not args.url else "(remote)",
        characters=args.character,
        clients=args.clients,
        requests_per_client=args.requests,
        max_tokens=args.max_tokens,
        max_batch=args.max_batch,
        vocabulary=args.vocabulary,
        device=args.device,
        machine=f"{platform.machine()} {os.cpu_count()} cores",
        date=dt.date.today().isoformat(),
    )
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    if args.save:
        out = ROOT / "bench" / "results" / f"serve-load-{summary['date']}.json"
        out.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0 if summary["failed"] == 0 and summary["completed"] == summary["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
