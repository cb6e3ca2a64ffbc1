"""Text normalisation for matching answers: NFKC, case, kana, spacing, numerals."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")
_KANJI_DIGITS = "〇一二三四五六七八九"


def katakana_to_hiragana(text: str) -> str:
    """ァ–ヶ become their hiragana; everything else is kept."""
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)


def normalize(text: str) -> str:
    """NFKC, case-folded, katakana as hiragana, no whitespace: the form answers are matched in."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub("", katakana_to_hiragana(text))


def kanji_numeral(number: int) -> str:
    """17 -> 十七, 163 -> 百六十三, 2 -> 二 (0 < number < 10000)."""
    if number == 0:
        return "〇"
    parts = []
    for unit_value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit, number = divmod(number, unit_value)
        if digit:
            parts.append(("" if digit == 1 and unit else _KANJI_DIGITS[digit]) + unit)
    return "".join(parts)


def keyword_variants(keyword: str) -> set[str]:
    """Normalised forms of a card keyword: itself plus kanji numerals for its digit runs."""
    base = normalize(keyword)
    variants = {base}
    digits = re.findall(r"\d+", base)
    if digits and all(0 < int(d) < 10000 for d in digits):
        variants.add(re.sub(r"\d+", lambda m: kanji_numeral(int(m.group())), base))
    return {v for v in variants if v}
