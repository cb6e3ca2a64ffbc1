#!/usr/bin/env python3
"""Echo and fragment rates of saved replies, next to the fragment rate of real lines; no model.

Replies: every ``generations.jsonl`` under the given folders (default: the shipped
evaluations in docs/results), per run and condition. Real lines: each sample-cast heroine's
own lines and, where ``../shared/corpora/aozora`` exists (or ``--corpus DIR``), every line
of each play: the rate a metric of broken sentences gives text that people wrote.

    python bench/reply_rates.py [FOLDER ...] [--corpus DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "aozora"


def reply_rows(folders: list[Path]) -> list[dict[str, object]]:
    from serifu.evaluation.echo import echo_report
    from serifu.evaluation.fragments import fragment_report

    rows = []
    for folder in folders:
        for path in sorted(folder.rglob("generations.jsonl")):
            replies = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
            for condition in sorted({r["condition"] for r in replies}):
                chosen = [r for r in replies if r["condition"] == condition]
                texts = [r["text"] for r in chosen]
                echo = echo_report([r["query"] for r in chosen], texts)
                frag = fragment_report(texts, [r.get("stopped", True) for r in chosen])
                rows.append(
                    {
                        "run": str(path.parent.relative_to(folder.parent)),
                        "condition": condition,
                        "n": len(chosen),
                        "echo_rate": echo["echo_rate"],
                        "fragment_rate": frag["fragment_rate"],
                        "fragments_by_kind": frag["by_kind"],
                        "echo_examples": [e["reply"] for e in echo["echoes"][:3]],  # type: ignore[index]
                        "fragment_examples": [f["found"] for f in frag["fragments"][:3]],  # type: ignore[index]
                    }
                )
    return rows


def real_rows(corpus: Path | None) -> list[dict[str, object]]:
    """Fragment rates of lines people wrote: each cast heroine's, each corpus play's."""
    from serifu import plugins
    from serifu.builtin.sample_cast import cast_ids
    from serifu.data.characters import character_utterances
    from serifu.data.io import read_utterances
    from serifu.evaluation.fragments import fragment_report

    sets: list[tuple[str, list[str]]] = []
    for cid in cast_ids():
        pack = plugins.get_character(cid)
        speaker = pack.card().short_name
        sets.append((cid, [u.text for u in character_utterances(pack) if u.speaker == speaker]))
    if corpus is not None and corpus.is_dir():
        for play in sorted(corpus.glob("*.txt")):
            sets.append((play.stem, [u.text for u in read_utterances([play], "aozora-play")]))
    rows = []
    for name, lines in sets:
        report = fragment_report(lines, [True] * len(lines))
        found = [f["found"] for f in report["fragments"]]  # type: ignore[attr-defined]
        rows.append(
            {
                "lines": name,
                "n": len(lines),
                "fragment_rate": report["fragment_rate"],
                "found": found,
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("folders", nargs="*", type=Path, default=[ROOT / "docs" / "results"])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    real = real_rows(args.corpus)
    for row in real:
        print(f"real lines  {row['lines']:42} n={row['n']:4} fragments {row['fragment_rate']:.3f}")
    rows = reply_rows([f.resolve() for f in args.folders])
    for row in rows:
        print(
            f"{row['run']:58} {row['condition']:18} n={row['n']:4} "
            f"echo {row['echo_rate']:.3f} fragments {row['fragment_rate']:.3f}"
        )
    if args.out:
        record = {"benchmark": "reply_rates", "real_lines": real, "rows": rows}
        from serifu.fsutil import atomic_write_text

        atomic_write_text(args.out, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
