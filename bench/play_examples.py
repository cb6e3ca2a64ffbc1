#!/usr/bin/env python3
"""Her real exchanges in the prompt (``--examples 3``, ChatHaruhi's method) for play speakers
without a pack: echo, fragments, cut-off and transcript lines, with and without, on the base
and on her 20-step adapter (CPU, Gemma 3 270M, 40 openers, seed 0).

Needs ``bench/play_vocabulary.py``'s work folder (its datasets ``d-*`` and adapters ``a-*``);
the exchanges shown are each speaker's training split (``dataset_pairs(…, ("train",))``).

    python bench/play_examples.py --work /tmp/play-vocabulary [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.play_vocabulary import CASES, CORPUS  # noqa: E402  (the same speakers and folders)


def run(work: Path, k: int = 3, limit: int = 40) -> dict[str, dict[str, object]]:
    import torch

    from serifu.data.io import read_utterances
    from serifu.evaluation.echo import echo_report
    from serifu.evaluation.fragments import fragment_report
    from serifu.evaluation.generation import generate_replies
    from serifu.evaluation.reference import dataset_pairs
    from serifu.evaluation.reply_format import is_transcript
    from serifu.inference import load_chatbot
    from serifu.queries import build_queries
    from serifu.retrieval import ExampleRetriever

    torch.set_num_threads(2)
    queries = build_queries(None, None, limit=limit)
    out: dict[str, dict[str, object]] = {}
    for play, speaker in CASES:
        name = f"{Path(play).stem}-{speaker}"
        lines = [
            u.text for u in read_utterances([CORPUS / play], "aozora-play") if u.speaker == speaker
        ]
        train = dataset_pairs(work / f"d-{name}", ("train",))
        for adapter in (None, work / f"a-{name}"):
            bot = load_chatbot(model="gemma-3-270m", adapter=adapter, lines=lines, device="cpu")
            bot.name = speaker
            for shown in (0, k):
                bot.examples = ExampleRetriever(train, k=shown) if shown else None
                replies = generate_replies(bot, queries, "x", batch_size=16, max_new_tokens=48, seed=0)  # fmt: skip
                texts = [r.text for r in replies]
                key = f"{speaker} {'adapter' if adapter else 'base'} k={shown}"
                out[key] = {
                    "echo": echo_report([r.query for r in replies], texts)["echo_rate"],
                    "fragments": fragment_report(texts, [r.stopped for r in replies])["fragment_rate"],
                    "cut": sum(not r.stopped for r in replies) / len(replies),
                    "transcript": sum(is_transcript(t, speaker) for t in texts) / len(texts),
                    "texts": texts,
                }  # fmt: skip
                print(key, {a: b for a, b in out[key].items() if a != "texts"}, flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/play-vocabulary"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    record = {"benchmark": "play_examples", "cases": run(args.work)}
    if args.out:
        from serifu.fsutil import atomic_write_text

        atomic_write_text(args.out, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
