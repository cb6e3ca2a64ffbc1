"""Echo: replies that repeat the player's line back instead of answering it.

A lightly tuned model often parrots the line it was given (「宿題やってきた？ちょっと見せて
ほしいんだけど」 → 「宿題やってきた！ちょっと見せてほしいんだけど。」): clean, one line, in
Japanese — every other format check passes — and no sense. A reply echoes when at least
:data:`SHARE` of the line's characters (punctuation and spaces left out, NFKC) reappear in
it in runs of two or more, in order (``difflib``'s matching blocks); lines shorter than
:data:`MIN_CHARS` never count (「何歳？」 answered 「何歳やと思う？」 is no echo).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence

SHARE = 0.8
MIN_CHARS = 6
_SKIP = re.compile(r"[\s\W_ー〜～]", re.UNICODE)


def _letters(text: str) -> str:
    return _SKIP.sub("", unicodedata.normalize("NFKC", text))


def echoed_share(line: str, reply: str) -> float:
    """The share of ``line``'s characters found again in ``reply`` (runs of two or more, in
    order); 0 for lines shorter than :data:`MIN_CHARS`."""
    a, b = _letters(line), _letters(reply)
    if len(a) < MIN_CHARS:
        return 0.0
    blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks if block.size >= 2) / len(a)


def echoes(line: str, reply: str) -> bool:
    return echoed_share(line, reply) >= SHARE


def echo_report(lines: Sequence[str], replies: Sequence[str]) -> dict[str, object]:
    """Share of replies that echo their line, and the echoing pairs."""
    pairs = list(zip(lines, replies, strict=True))
    hits = [
        {"index": i, "line": line, "reply": reply}
        for i, (line, reply) in enumerate(pairs)
        if echoes(line, reply)
    ]
    return {
        "n": len(pairs),
        "echo_rate": round(len(hits) / len(pairs), 4) if pairs else 0.0,
        "echoes": hits,
    }
