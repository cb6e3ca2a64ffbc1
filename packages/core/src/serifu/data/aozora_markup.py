"""Aozora Bunko markup: ruby 《》 and ｜, editor notes ［＃…］, gaiji ※［＃…］, ／＼ repeat marks."""

from __future__ import annotations

import re
from typing import Literal

GaijiMode = Literal["resolve", "drop", "placeholder"]

RUBY = re.compile(r"《[^《》]*》")
RUBY_START = "｜"
GAIJI = re.compile(r"※［＃([^］]*)］")
NOTE = re.compile(r"［＃[^］]*］")
_JIS_CODE = re.compile(r"([12])-(\d{1,2})-(\d{1,2})")
_UNICODE = re.compile(r"U\+([0-9A-Fa-f]{4,6})")
_DAKUTEN_KANA = {"ワ": "ヷ", "ヰ": "ヸ", "ヱ": "ヹ", "ヲ": "ヺ", "ウ": "ヴ"}


def _jis_x_0213(plane: int, row: int, cell: int) -> str | None:
    """The character at a JIS X 0213 men-ku-ten code (through Python's euc_jis_2004 codec)."""
    if not (1 <= row <= 94 and 1 <= cell <= 94):
        return None
    raw = bytes([0xA0 + row, 0xA0 + cell])
    if plane == 2:
        raw = b"\x8f" + raw
    try:
        char = raw.decode("euc_jis_2004")
    except UnicodeDecodeError:
        return None
    return char or None


def resolve_gaiji(description: str) -> str | None:
    """The character a gaiji description names, when it can be known; else None.

    Handles ``U+XXXX``, JIS X 0213 codes (``第3水準1-85-25``, ``1-2-22``) and
    ``濁点付き片仮名ヲ``-style descriptions.
    """
    if m := _UNICODE.search(description):
        return chr(int(m.group(1), 16))
    if description.startswith("濁点付き片仮名") and len(description) > 7:
        kana = description[7]
        return _DAKUTEN_KANA.get(kana, kana + "\u3099")
    if m := _JIS_CODE.search(description):
        return _jis_x_0213(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return None


def replace_gaiji(text: str, mode: GaijiMode = "resolve", placeholder: str = "〓") -> str:
    """Replace ``※［＃…］`` gaiji notes: resolved to the character, dropped, or a placeholder."""

    def sub(m: re.Match[str]) -> str:
        if mode == "drop":
            return ""
        if mode == "resolve" and (char := resolve_gaiji(m.group(1))) is not None:
            return char
        return placeholder

    return GAIJI.sub(sub, text)


def strip_markup(
    text: str,
    *,
    gaiji: GaijiMode = "resolve",
    gaiji_placeholder: str = "〓",
    odoriji: bool = True,
) -> str:
    """Remove ruby and editor notes, replace gaiji, and (optionally) turn ／＼ into 〱."""
    text = replace_gaiji(text, gaiji, gaiji_placeholder)
    text = NOTE.sub("", text)
    text = RUBY.sub("", text).replace(RUBY_START, "")
    if odoriji:
        text = text.replace("／″＼", "〲").replace("／＼", "〱")
    return text
