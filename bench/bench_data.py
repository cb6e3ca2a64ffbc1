"""Benchmark: build ロミオ's dialogue dataset from Romeo and Juliet (median of 5 runs).

Target: <= 2 s per build. Usage::

    .venv/bin/python bench/bench_data.py [--corpus DIR] [--save]

``--save`` writes bench/results/data-<date>.json; nothing else is written in the repo
(the datasets go to a temporary folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROMEO = "000264_42773_romeo-to-juliet.txt"
TARGET_S = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_corpus = os.environ.get(
        "SERIFU_AOZORA", str(ROOT.parent / "shared" / "corpora" / "aozora")
    )
    parser.add_argument("--corpus", default=default_corpus, help="The Aozora corpus folder.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--save", action="store_true", help="Write bench/results/data-<date>.json.")
    args = parser.parse_args()

    play = Path(args.corpus) / ROMEO
    if not play.is_file():
        print(f"missing {play}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    import datasets  # noqa: F401  (imported once, like a CLI run would)

    from serifu.config.data import DataConfig
    from serifu.data.build import build_dataset

    import_s = time.perf_counter() - t0
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            start = time.perf_counter()
            result = build_dataset(
                [play], Path(tmp) / f"run{i}", source="aozora-play", speaker="ロミオ",
                config=DataConfig(format="dialogue"),
            )  # fmt: skip
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    report = {
        "bench": "data: ロミオ dialogue dataset from Romeo and Juliet",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}",
        "runs_s": [round(t, 4) for t in times],
        "median_s": round(median, 4),
        "import_s": round(import_s, 3),
        "target_s": TARGET_S,
        "examples": result.splits,
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.save:
        out = ROOT / "bench" / "results" / f"data-{report['date']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
