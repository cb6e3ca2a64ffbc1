"""``serifu data stats``: counts, lengths, sentence endings, ``…`` rate, first-person pronouns."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serifu.data.build import length_stats, load_build_info
from serifu.data.splits import SPLITS
from serifu.data.tagging import surfaces
from serifu.errors import SerifuError

FIRST_PERSON = (
    "わたくし", "わたし", "あたし", "私", "僕", "ぼく", "ボク", "俺", "おれ", "オレ",
    "うち", "ウチ", "わし", "儂", "あたい", "自分", "予", "余", "拙者", "吾輩", "我輩",
)  # fmt: skip
_SENTENCE_END = re.compile(r"[。！？!?…」]+|\n")
_TRAILING_PUNCT = re.compile(r"[、。！？!?…〜ー～っッ」』）)\s]+$")


def _texts(folder: Path, fmt: str) -> dict[str, list[str]]:
    """Each split's texts; a damaged or truncated dataset is a :class:`SerifuError`."""
    from datasets import load_from_disk

    column = "reply" if fmt == "dialogue" else "text"
    try:
        dd = load_from_disk(str(folder))
        return {
            split: [str(t).rstrip("\n") for t in dd[split][column]]
            for split in SPLITS
            if split in dd
        }
    except Exception as exc:  # pyarrow/datasets raise many types for a damaged folder
        raise SerifuError(
            f"the dataset files are damaged or incomplete ({type(exc).__name__}: "
            f"{str(exc)[:200]}); rebuild the dataset with `serifu data build`",
            path=folder,
        ) from None


def _tokenizer() -> Any:
    from serifu.data.tagging import tagger

    try:
        return tagger()
    except Exception:  # fugashi or its dictionary missing: fall back to characters
        return None


def sentence_endings(texts: Sequence[str], tagger: Any, top: int = 10) -> list[tuple[str, int]]:
    """The commonest last word of each sentence (punctuation stripped)."""
    counts: Counter[str] = Counter()
    for text in texts:
        for sentence in _SENTENCE_END.split(text):
            sentence = _TRAILING_PUNCT.sub("", sentence)
            if not sentence:
                continue
            if tagger is not None:
                words = surfaces(tagger, sentence)
                ending = words[-1] if words else sentence[-2:]
            else:
                ending = sentence[-2:]
            counts[ending] += 1
    return counts.most_common(top)


def first_person_counts(texts: Sequence[str], tagger: Any) -> dict[str, int]:
    """How often each first-person pronoun occurs (as a whole word when fugashi is there)."""
    counts: Counter[str] = Counter()
    for text in texts:
        if tagger is not None:
            counts.update(w for w in surfaces(tagger, text) if w in FIRST_PERSON)
        else:
            for p in FIRST_PERSON:
                counts[p] += text.count(p)
    return {p: n for p, n in counts.most_common() if n}


def histogram(lengths: Sequence[int], bins: int = 10) -> list[dict[str, int]]:
    if not lengths:
        return []
    lo, hi = min(lengths), max(lengths)
    width = max(1, -(-(hi - lo + 1) // bins))
    rows = [
        {"from": lo + i * width, "to": lo + (i + 1) * width - 1, "count": 0} for i in range(bins)
    ]
    for n in lengths:
        rows[(n - lo) // width]["count"] += 1
    while rows and rows[-1]["count"] == 0:
        rows.pop()
    return rows


def dataset_stats(folder: Path | str) -> dict[str, Any]:
    """Statistics of a dataset folder written by ``serifu data build``."""
    folder = Path(folder)
    info = load_build_info(folder)
    texts_by_split = _texts(folder, info["format"])
    texts = [t for split in SPLITS for t in texts_by_split.get(split, [])]
    lengths = [len(t) for t in texts]
    tagger = _tokenizer()
    return {
        "dir": str(folder),
        "format": info["format"],
        "character": info.get("character"),
        "splits": {s: len(v) for s, v in texts_by_split.items()},
        "examples": len(texts),
        "length": {**length_stats(lengths), "histogram": histogram(lengths)},
        "endings": [{"ending": e, "count": n} for e, n in sentence_endings(texts, tagger)],
        "ellipsis_rate": round(sum("…" in t for t in texts) / len(texts), 4) if texts else 0.0,
        "first_person": first_person_counts(texts, tagger),
    }


def render_stats(stats: dict[str, Any], width: int = 40) -> str:
    """The statistics as terminal text, with a bar histogram of lengths."""
    lines = [
        f"{stats['dir']}: format {stats['format']}, character {stats['character'] or '-'}",
        "examples: "
        + ", ".join(f"{k} {v}" for k, v in stats["splits"].items())
        + f" (total {stats['examples']})",
    ]
    length = stats["length"]
    if length.get("count"):
        lines.append(
            f"length (chars): min {length['min']}, median {length['median']}, mean {length['mean']}, max {length['max']}"
        )
        peak = max(row["count"] for row in length["histogram"]) or 1
        for row in length["histogram"]:
            bar = "█" * max(1 if row["count"] else 0, round(row["count"] / peak * width))
            lines.append(f"  {row['from']:>4}-{row['to']:<4} {row['count']:>6} {bar}")
    endings = ", ".join(f"{e['ending']} {e['count']}" for e in stats["endings"])
    lines.append(f"top sentence endings: {endings or '-'}")
    lines.append(f"lines with …: {stats['ellipsis_rate']:.1%}")
    pronouns = ", ".join(f"{p} {n}" for p, n in stats["first_person"].items())
    lines.append(f"first-person pronouns: {pronouns or '-'}")
    return "\n".join(lines)
