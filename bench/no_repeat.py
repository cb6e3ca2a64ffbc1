#!/usr/bin/env python3
"""Loops in replies, with and without ``--no-repeat-ngram N`` (CPU, Gemma 3 270M).

Cases: shipped sample-cast adapters, with her card's system prompt (does the ban cost her
voice or her profile answers?)
and a play speaker's adapter trained hard enough to loop (``serifu data build`` +
``serifu train --max-steps 60`` at the cast recipe's learning rate, 5e-4 cosine, kept in
``--work`` and reused). Each case is evaluated once per size with the same seed; the
``fragments`` evaluator's ``loop`` kind counts the loops.

    python bench/no_repeat.py [--sizes 0,3,4] [--limit 40] [--work DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SERIFU_AOZORA", ROOT.parent / "shared" / "corpora" / "aozora"))
MODEL = "gemma-3-270m"
HEROINES = ("akane", "rei")
PLAY = ("001154_52082_kamifusen.txt", "妻")
EVALUATORS = ("character-classifier", "profile-qa", "format", "echo", "fragments", "diversity")


def serifu(*args: str) -> None:
    cmd = [sys.executable, "-m", "serifu", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")


def play_adapter(work: Path) -> Path:
    play, speaker = PLAY
    name = f"{Path(play).stem}-{speaker}"
    adapter = work / f"a-{name}-60"
    if not (adapter / "adapter_config.json").is_file():
        data = work / f"d-{name}"
        serifu("data", "build", str(CORPUS / play), "--source", "aozora-play",
               "--speaker", speaker, "--out", str(data), "--force")  # fmt: skip
        serifu("train", "--model", "gemma-3-270m", "--data", str(data), "--out", str(adapter),
               "--max-steps", "60", "--set", "train.learning_rate=5e-4",
               "--set", "train.lr_scheduler=cosine", "--set", "train.warmup_steps=5",
               "--force")  # fmt: skip
    return adapter


def evaluate(case: str, target: list[str], size: int, limit: int, work: Path) -> dict[str, object]:
    out = work / f"e-{case}-n{size}"
    if not (out / "report.json").is_file():
        evaluators = [a for e in EVALUATORS for a in ("-e", e)]
        serifu("eval", "--model", "gemma-3-270m", *target, "--limit", str(limit),
               "--no-repeat-ngram", str(size), *evaluators, "--out", str(out), "--force")  # fmt: skip
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    [(condition, result)] = report["conditions"].items()
    frag = result["evaluators"]["fragments"]
    fmt = result["evaluators"]["format"]
    return {
        "case": case,
        "no_repeat_ngram": size,
        "condition": condition,
        "replies": frag["n"],
        **result["summary"],
        "loop_rate": frag["by_kind"]["loop"],
        "cut_off_rate": fmt["cut_off_rate"],
        "loops": [f["text"] for f in frag["fragments"] if any(k == "loop" for k, _ in f["found"])][
            :5
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="0,3,4")
    ap.add_argument("--limit", type=int, default=40, help="openers (and profile questions)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/no-repeat"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    from serifu import plugins

    cases: list[tuple[str, list[str]]] = [
        (
            f"{h}-tuned",
            ["--character", h, "--adapter", str(plugins.get_character(h).adapters[MODEL])],
        )
        for h in HEROINES
    ]
    if CORPUS.is_dir():
        play, speaker = PLAY
        target = ["--adapter", str(play_adapter(args.work)), "--script", str(CORPUS / play),
                  "--source", "aozora-play", "--speaker", speaker]  # fmt: skip
        cases.append((speaker, target))
    rows = []
    for case, target in cases:
        for size in sizes:
            row = evaluate(case, target, size, args.limit, args.work)
            rows.append(row)
            print(f"{case:11} n={size}: loops {row['loop_rate']:.3f} fragments "
                  f"{row['fragments.fragment_rate']:.3f} in-character "
                  f"{row.get('character-classifier.target_share', float('nan')):.3f} profile "
                  f"{row.get('profile-qa.accuracy', float('nan')):.3f} cut off "
                  f"{row['cut_off_rate']:.3f}", flush=True)  # fmt: skip
    if args.out:
        record = {"benchmark": "no_repeat", "limit": args.limit, "rows": rows}
        from serifu.fsutil import atomic_write_text

        atomic_write_text(args.out, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
