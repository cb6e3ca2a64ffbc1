#!/usr/bin/env python3
"""Echo rates (``serifu.evaluation.echo``) of saved replies: every ``generations.jsonl``
under the given folders (default: the shipped evaluations in docs/results), per run and
condition; no model needed.

    python bench/echo_rates.py [FOLDER ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rates(folders: list[Path]) -> list[dict[str, object]]:
    from serifu.evaluation.echo import echo_report

    rows = []
    for folder in folders:
        for path in sorted(folder.rglob("generations.jsonl")):
            replies = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
            for condition in sorted({r["condition"] for r in replies}):
                chosen = [r for r in replies if r["condition"] == condition]
                result = echo_report([r["query"] for r in chosen], [r["text"] for r in chosen])
                rows.append(
                    {
                        "run": str(path.parent.relative_to(folder.parent)),
                        "condition": condition,
                        "n": result["n"],
                        "echo_rate": result["echo_rate"],
                        "examples": [e["reply"] for e in result["echoes"][:3]],  # type: ignore[index]
                    }
                )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, default=[ROOT / "docs" / "results"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = rates([f.resolve() for f in args.folders])
    for row in rows:
        print(f"{row['run']:58} {row['condition']:18} n={row['n']:4} echo {row['echo_rate']:.3f}")
    if args.out:
        record = {"benchmark": "echo_rates", "rows": rows}
        args.out.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
