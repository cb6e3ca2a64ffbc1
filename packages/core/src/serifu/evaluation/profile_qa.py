"""Profile questions: a reply is right when every keyword group of the card has a variant in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from serifu.evaluation.textnorm import keyword_variants, normalize


def answer_is_correct(reply: str, answers: Sequence[Sequence[str]]) -> bool:
    """Matched after NFKC, case folding, kana folding and spacing removal; kanji numerals too."""
    text = normalize(reply)
    if not text or not answers:
        return False
    return all(any(v in text for kw in group for v in keyword_variants(kw)) for group in answers)


def profile_qa(
    questions: Sequence[str], replies: Sequence[str], answers: Sequence[Sequence[Sequence[str]]]
) -> dict[str, Any]:
    """Accuracy plus each question's verdict."""
    verdicts = [answer_is_correct(r, a) for r, a in zip(replies, answers, strict=True)]
    return {
        "n": len(verdicts),
        "correct": sum(verdicts),
        "accuracy": round(sum(verdicts) / len(verdicts), 4) if verdicts else 0.0,
        "items": [
            {"q": q, "reply": r, "correct": v}
            for q, r, v in zip(questions, replies, verdicts, strict=True)
        ],
    }
