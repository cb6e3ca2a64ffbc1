"""Reply format: one line that stopped at the reply end (not cut off), and empty replies."""

from __future__ import annotations

from collections.abc import Sequence


def is_one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text.strip("\n")


def reply_format(texts: Sequence[str], stopped: Sequence[bool]) -> dict[str, float | int]:
    """Shares over all replies; ``ok`` = non-empty, one line, ended at the reply end/EOS."""
    n = len(texts)
    if n == 0:
        return {
            "n": 0,
            "ok_rate": 0.0,
            "empty_rate": 0.0,
            "multi_line_rate": 0.0,
            "cut_off_rate": 0.0,
        }
    ok = sum(is_one_line(t) and s for t, s in zip(texts, stopped, strict=True))
    empty = sum(not t.strip() for t in texts)
    multi = sum(bool(t.strip()) and not is_one_line(t) for t in texts)
    cut = sum(not s for s in stopped)
    return {
        "n": n,
        "ok_rate": round(ok / n, 4),
        "empty_rate": round(empty / n, 4),
        "multi_line_rate": round(multi / n, 4),
        "cut_off_rate": round(cut / n, 4),
    }
