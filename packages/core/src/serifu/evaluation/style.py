"""Style markers of a set of lines, and how far generated lines are from real ones.

Markers (per reply unless noted): sentence endings (per sentence: the trailing particles
and auxiliaries), the first first-person pronoun used, whether ``…`` / ``！`` / ``？``
appear, and the length in characters (binned). Each marker is a distribution; the
distance between generated and real lines is their Jensen–Shannon divergence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serifu.evaluation.divergence import distribution, jensen_shannon, top
from serifu.evaluation.morph import Morpheme, morphemes
from serifu.evaluation.textnorm import katakana_to_hiragana

FIRST_PERSON = frozenset(
    [
        "わたし",
        "わたくし",
        "あたし",
        "あたい",
        "ぼく",
        "おれ",
        "うち",
        "じぶん",
        "わし",
        "われ",
        "わい",
        "おいら",
        "せっしゃ",
        "わがはい",
    ]
    + ["私", "僕", "俺", "自分", "我", "儂", "拙者", "吾輩"]
)
NO_PRONOUN = "(none)"
ENDING_POS = frozenset({"助詞", "助動詞"})
MAX_ENDING_MORPHEMES = 3
LENGTH_BINS = (5, 10, 20, 30, 50)
_SENTENCE_END = re.compile(r"(?<=[。！？!?…])|\n")


@dataclass(frozen=True)
class StyleMarkers:
    """The marker observations of a set of lines."""

    endings: list[str]
    pronouns: list[str]
    ellipsis: list[bool]
    exclamation: list[bool]
    question: list[bool]
    lengths: list[int]


def sentence_ending(tokens: Sequence[Morpheme]) -> str | None:
    """The trailing particles/auxiliaries of a sentence (``わよ``, ``です``) or ``[名詞]``-style POS."""
    words = [t for t in tokens if t.pos1 not in ("補助記号", "空白")]
    if not words:
        return None
    tail: list[str] = []
    for token in reversed(words):
        if len(tail) == MAX_ENDING_MORPHEMES:
            break
        if token.pos1 in ENDING_POS or (token.pos1 == "形容詞" and token.surface == "ない"):
            tail.insert(0, token.surface)  # ない as in じゃない
        else:
            break
    return "".join(tail) if tail else f"[{words[-1].pos1}]"


def first_pronoun(tokens: Sequence[Morpheme]) -> str:
    for token in tokens:
        if token.pos1 in ("代名詞", "名詞") and katakana_to_hiragana(token.surface) in FIRST_PERSON:
            return katakana_to_hiragana(token.surface)
    return NO_PRONOUN


def length_bin(n: int) -> str:
    for upper in LENGTH_BINS:
        if n <= upper:
            return f"≤{upper}"
    return f">{LENGTH_BINS[-1]}"


def style_markers(texts: Sequence[str]) -> StyleMarkers:
    """Observe every marker on ``texts`` (empty or garbage text is fine)."""
    endings: list[str] = []
    pronouns: list[str] = []
    for text in texts:
        normalized = unicodedata.normalize("NFKC", text).replace("...", "…")
        for sentence in _SENTENCE_END.split(normalized):
            ending = sentence_ending(morphemes(sentence))
            if ending is not None:
                endings.append(ending)
        pronouns.append(first_pronoun(morphemes(normalized)))
    flat = [unicodedata.normalize("NFKC", t) for t in texts]
    return StyleMarkers(
        endings=endings,
        pronouns=pronouns,
        ellipsis=["…" in t or "‥" in t or "..." in t for t in flat],
        exclamation=["!" in t for t in flat],
        question=["?" in t for t in flat],
        lengths=[len(t.strip()) for t in texts],
    )


def _rate(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def _bernoulli(values: Sequence[bool]) -> dict[str, float]:
    return distribution("yes" if v else "no" for v in values)


def marker_distributions(markers: StyleMarkers) -> dict[str, dict[str, float]]:
    return {
        "endings": distribution(markers.endings),
        "first_person": distribution(markers.pronouns),
        "ellipsis": _bernoulli(markers.ellipsis),
        "exclamation": _bernoulli(markers.exclamation),
        "question": _bernoulli(markers.question),
        "length": distribution(length_bin(n) for n in markers.lengths),
    }


def summarize(markers: StyleMarkers, *, k: int = 10) -> dict[str, Any]:
    lengths = sorted(markers.lengths)
    return {
        "n": len(markers.lengths),
        "top_endings": top(distribution(markers.endings), k),
        "first_person": top(distribution(markers.pronouns), k),
        "ellipsis_rate": round(_rate(markers.ellipsis), 4),
        "exclamation_rate": round(_rate(markers.exclamation), 4),
        "question_rate": round(_rate(markers.question), 4),
        "mean_length": round(sum(lengths) / len(lengths), 2) if lengths else 0.0,
        "median_length": lengths[len(lengths) // 2] if lengths else 0,
    }


def compare_style(generated: Sequence[str], real: Sequence[str]) -> dict[str, Any]:
    """Per-marker Jensen–Shannon divergence (and its mean) plus both summaries."""
    gen, ref = style_markers(generated), style_markers(real)
    gen_dist, ref_dist = marker_distributions(gen), marker_distributions(ref)
    jsd = {name: round(jensen_shannon(gen_dist[name], ref_dist[name]), 4) for name in ref_dist}
    return {
        "jsd": jsd,
        "jsd_mean": round(sum(jsd.values()) / len(jsd), 4),
        "generated": summarize(gen),
        "real": summarize(ref),
        "length_distribution": {
            "generated": top(gen_dist["length"], 10),
            "real": top(ref_dist["length"], 10),
        },
    }
