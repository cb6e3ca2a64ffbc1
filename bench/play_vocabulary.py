#!/usr/bin/env python3
"""Junk in the replies of adapters trained on a play's speaker (no character pack), with
her output vocabulary off (what such a character got before session 18) and on (``auto``:
her script's lines, and the tokens her adapter keeps).

For each (play, speaker): ``serifu data build`` from the shared Aozora corpus, ``serifu
train`` on the embedded default model for ``--steps`` steps (CPU), then ``serifu eval
--script … --speaker … -e format --limit N`` once per vocabulary setting, same seed. The
``format`` evaluator's ``clean_rate`` is the share of replies without junk (special tokens,
foreign script, mojibake); the run also keeps every reply.

    python bench/play_vocabulary.py [--steps 20] [--limit 40] [--work DIR] [--out FILE]
    python bench/play_vocabulary.py --summarise DIR --out FILE   # a finished work folder
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
CASES = [
    ("001154_52082_kamifusen.txt", "妻"),
    ("000082_1312_shuzenji-monogatari.txt", "かつら"),
    ("000264_42773_romeo-to-juliet.txt", "ヂュリ"),
    ("000083_1051_gimin-jinbee.txt", "おきん"),
]
SETTINGS = ("off", "auto")


def serifu(*args: str) -> None:
    cmd = [sys.executable, "-m", "serifu", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")


def run_case(play: str, speaker: str, work: Path, steps: int, limit: int) -> None:
    name = f"{Path(play).stem}-{speaker}"
    script = str(CORPUS / play)
    serifu("data", "build", script, "--source", "aozora-play", "--speaker", speaker,
           "--out", str(work / f"d-{name}"), "--force")  # fmt: skip
    serifu("train", "--model", "gemma-3-270m", "--data", str(work / f"d-{name}"),
           "--out", str(work / f"a-{name}"), "--max-steps", str(steps), "--force")  # fmt: skip
    for setting in SETTINGS:
        serifu("eval", "--model", "gemma-3-270m", "--adapter", str(work / f"a-{name}"),
               "--script", script, "--source", "aozora-play", "--speaker", speaker,
               "--limit", str(limit), "--vocabulary", setting, "-e", "format",
               "--out", str(work / f"e-{name}-{setting}"), "--force")  # fmt: skip


def summarise(work: Path) -> dict[str, object]:
    """Per case and setting: replies, the ``format`` evaluator's clean rate, the unclean ones."""
    rows = []
    for play, speaker in CASES:
        name = f"{Path(play).stem}-{speaker}"
        for setting in SETTINGS:
            report_file = work / f"e-{name}-{setting}" / "report.json"
            if not report_file.is_file():
                continue
            report = json.loads(report_file.read_text(encoding="utf-8"))
            for condition, result in report["conditions"].items():
                fmt = result["evaluators"]["format"]
                rows.append(
                    {
                        "play": play,
                        "speaker": speaker,
                        "vocabulary": setting,
                        "condition": condition,
                        "replies": fmt["n"],
                        "clean_rate": fmt["clean_rate"],
                        "with_junk": len(fmt["unclean"]),
                        "unclean": [u["text"] for u in fmt["unclean"]],
                    }
                )
    return {"benchmark": "play_vocabulary", "cases": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--limit", type=int, default=40, help="openers per evaluation")
    ap.add_argument("--work", type=Path, default=Path("/tmp/play-vocabulary"))
    ap.add_argument("--summarise", type=Path, help="only summarise this finished work folder")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.summarise is None:
        if not CORPUS.is_dir():
            raise SystemExit(f"the Aozora corpus is not here ({CORPUS})")
        args.work.mkdir(parents=True, exist_ok=True)
        for play, speaker in CASES:
            run_case(play, speaker, args.work, args.steps, args.limit)
            print(f"{play} {speaker}: done", flush=True)
    record = summarise(args.summarise or args.work)
    for row in record["cases"]:  # type: ignore[attr-defined]
        print(f"{row['speaker']:6} vocabulary {row['vocabulary']:4}: "
              f"{row['with_junk']}/{row['replies']} replies with junk")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
