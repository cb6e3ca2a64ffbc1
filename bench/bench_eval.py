"""Benchmark: the full 111-query evaluation (every evaluator, classifier included) on a tiny model, CPU.

Target: <= 60 s per evaluation (median of 3) on a 2-core machine.

    .venv/bin/python bench/bench_eval.py [--model tiny-gemma] [--character kaede] [--repeats 3]
        [--batch-size 32] [--threads 2]

Prints one JSON object: per-repeat wall times, the median, and the stage timings of the
last run (model load, generation, evaluators).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-gemma")
    parser.add_argument("--character", default="kaede")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--system-prompt", default="on", choices=["on", "off", "both"])
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from serifu.evaluation.runner import EvalRequest, evaluate

    times, report = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            request = EvalRequest(
                model=args.model,
                character=args.character,
                out=Path(tmp) / f"run{i}",
                system_prompt=args.system_prompt,
                batch_size=args.batch_size,
                device="cpu",
            )
            started = time.perf_counter()
            report = evaluate(request)
            times.append(round(time.perf_counter() - started, 2))
    queries = report["queries"]["opener"] + report["queries"]["profile"]
    print(
        json.dumps(
            {
                "benchmark": "eval-111",
                "model": args.model,
                "character": args.character,
                "queries": queries,
                "conditions": list(report["conditions"]),
                "seconds": times,
                "median_s": statistics.median(times),
                "target_s": 60,
                "stages_last_run": report["timing"],
                "evaluator_seconds": {
                    k: v.get("seconds")
                    for k, v in next(iter(report["conditions"].values()))["evaluators"].items()
                },
                "threads": args.threads,
                "batch_size": args.batch_size,
            },
            ensure_ascii=False,
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
