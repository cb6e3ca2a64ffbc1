"""Split Japanese text into word-like pieces (runs of one script), for word-by-word display."""

from __future__ import annotations

import re

_RUNS = re.compile(
    r"[\u4e00-\u9fff々〆]+[\u3041-\u309f]*"  # kanji + trailing okurigana
    r"|[\u3041-\u309fー]+"  # hiragana
    r"|[\u30a0-\u30ffー]+"  # katakana
    r"|[A-Za-z0-9Ａ-Ｚａ-ｚ０-９]+"
    r"|\s+"
    r"|."
)


def word_pieces(text: str) -> list[str]:
    """``"今日はいい天気だね！"`` -> ``["今日は", "いい", "天気だね", "！"]``; joined they give ``text``."""
    return _RUNS.findall(text)


def char_bigrams(text: str) -> list[str]:
    """Retrieval terms: character bigrams, plus unigrams except hiragana (too common to tell)."""
    chars = [c for c in text if c.isalnum() or c == "ー"]
    unigrams = [c for c in chars if not "\u3041" <= c <= "\u309f"]
    return unigrams + [a + b for a, b in zip(chars, chars[1:], strict=False)]
