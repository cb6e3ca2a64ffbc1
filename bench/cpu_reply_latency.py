#!/usr/bin/env python3
"""CPU reply latency of the default game path (gemma-3-270m + a shipped heroine adapter).

Each configuration streams replies to the same queries (seeded) and records the time to the
first visible text and to the whole reply; medians over queries and repeats. Levers, each
measured against the default in the same run (issue 12's ablation):
  default        output vocabulary on (restricted head), prompt head at the last position,
                 her system prompt cached (the game's setting: only the rest of a prompt runs)
  no-prefix      every prompt run whole (the dynamic cache: the default before session 8)
  full-head      the 262k-word head at every step, then masked (SERIFU_FULL_HEAD=1)
  full-prefill   the head over every prompt position as well (SERIFU_FULL_PREFILL=1)
  vocab-off      only special/unused tokens masked (no output vocabulary)
  best-of-2      two candidates sampled together and reranked (shown at once)
  old-holdback   the former stream: text held back 13 characters (computed from the default run)
Also counts replies with junk (special tokens, foreign script, mojibake).

    python bench/cpu_reply_latency.py [--character akane] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

QUERIES = [
    "おはよう、今日も元気だね",
    "何歳？",
    "放課後ひま？",
    "誕生日っていつだっけ？",
    "昨日のテレビ見た？",
    "部活は何やってるの？",
    "一緒に帰らない？",
    "好きな食べ物って何？",
    "テスト勉強してる？",
    "最近ハマってることある？",
]


def run(config: str, character: str, repeats: int, threads: int) -> dict[str, object]:
    import torch

    from serifu.evaluation.reply_format import junk
    from serifu.inference import load_chatbot

    torch.set_num_threads(threads)
    env = {"full-head": "SERIFU_FULL_HEAD", "full-prefill": "SERIFU_FULL_PREFILL"}
    for name in env.values():
        os.environ.pop(name, None)
    if config in env:
        os.environ[env[config]] = "1"
    if config == "full-prefill":
        os.environ["SERIFU_FULL_HEAD"] = "1"
    bot = load_chatbot(
        character=character,
        device="cpu",
        vocabulary="off" if config == "vocab-off" else "auto",
        best_of=2 if config == "best-of-2" else 1,
        prefix_cache=config != "no-prefix",  # the game's setting
    )
    bot.reply("こんにちは", seed=0)  # warm-up
    first, total, old_first, texts = [], [], [], []
    for r in range(repeats):
        for i, q in enumerate(QUERIES):
            t0 = time.perf_counter()
            seen, got_first, got_old = "", None, None
            for piece in bot.stream(q, seed=1000 * r + i):
                now = time.perf_counter() - t0
                seen += piece
                got_first = got_first if got_first is not None else now
                if got_old is None and len(seen) > 13:
                    got_old = now
            end = time.perf_counter() - t0
            first.append(got_first if got_first is not None else end)
            old_first.append(got_old if got_old is not None else end)
            total.append(end)
            texts.append(seen)
    out: dict[str, object] = {
        "config": config,
        "first_text_s_median": round(statistics.median(first), 3),
        "reply_s_median": round(statistics.median(total), 3),
        "replies": len(texts),
        "junk_replies": sum(bool(junk(t)) for t in texts),
        "vocab_size": len(bot.rules.vocab) if bot.rules.vocab is not None else None,
        "examples": texts[: len(QUERIES)],
    }
    if config == "default":
        out["old_holdback_first_text_s_median"] = round(statistics.median(old_first), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--character", default="akane")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--configs", default="default,no-prefix,full-head,full-prefill,vocab-off,best-of-2"
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    results = []
    for config in args.configs.split(","):
        res = run(config, args.character, args.repeats, args.threads)
        print(
            json.dumps({k: v for k, v in res.items() if k != "examples"}, ensure_ascii=False),
            flush=True,
        )
        results.append(res)
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "character": args.character,
                    "threads": args.threads,
                    "cpus": os.cpu_count(),
                    "results": results,
                },
                ensure_ascii=False,
                indent=1,
            ),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
