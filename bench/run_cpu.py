"""The CPU benchmarks (`python3 dev.py nox -s bench`): data building and the 111-query eval.

GPU benchmarks (bench/gpu/) need a GPU; docs/benchmarks.md says how they are run and
holds their results. Extra arguments: `--only data` or `--only eval`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", choices=["data", "eval"])
    args = ap.parse_args()
    jobs = {"data": [str(HERE / "bench_data.py"), "--save"], "eval": [str(HERE / "bench_eval.py")]}
    code = 0
    for name, cmd in jobs.items():
        if args.only in (None, name):
            print(f"== {name}", flush=True)
            code |= subprocess.call([sys.executable, *cmd])
    return code


if __name__ == "__main__":
    sys.exit(main())
