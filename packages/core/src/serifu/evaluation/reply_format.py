"""Reply format: one clean line that stopped at the reply end (not cut off), and empty replies.

``clean``: no special/control tokens (``<unused4191>``, ``<end_of_turn>``), no foreign-script
fragments (Cyrillic, Hangul, Chinese-only hanzi …, see :func:`serifu.inference.vocab.is_foreign_char`),
no Latin word glued to Japanese text (``変な顔やなFindingsRequest``), no mojibake (U+FFFD,
``Ã``-style UTF-8-read-as-Latin-1), no run of four or more ASCII symbols (``+++++++++#``;
``!!!!`` and ``....`` are emphasis, not junk).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from serifu.retrieval.examples import HEADER

_CONTROL = re.compile(r"<[A-Za-z_/|][^<>\s]{0,40}>|\[(?:unused|PAD|CLS|SEP|MASK)\d*\]")
_MOJIBAKE = re.compile("\ufffd|[ÃÂ][\x80-\xbf]|ã[\x80-\xbf]|[\x00-\x08\x0b-\x1f]")
_LATIN_WORD = re.compile(r"[A-Za-z]{4,}")
_SYMBOL_RUN = re.compile(r"[!-/:-@\[-`{-~]{4,}")
"""Four or more ASCII symbols in a row (``+++++++++#``, ``",":``): none in 7,783 real lines."""
_EMPHASIS = frozenset(".!?~-")


def junk(text: str, allowed_latin: frozenset[str] = frozenset()) -> list[str]:
    """What makes a reply unclean (empty list: clean). Latin words the character's own
    lines use (``allowed_latin``) are fine."""
    from serifu.inference.vocab import is_foreign_char

    found = _CONTROL.findall(text) + _MOJIBAKE.findall(text)
    found += [ch for ch in text if is_foreign_char(ch)]
    found += [w for w in _LATIN_WORD.findall(text) if w.lower() not in allowed_latin]
    found += [run for run in _SYMBOL_RUN.findall(text) if not set(run) <= _EMPHASIS]
    return found


def is_clean(text: str, allowed_latin: frozenset[str] = frozenset()) -> bool:
    return not junk(text, allowed_latin)


def is_one_line(text: str) -> bool:
    return bool(text.strip()) and "\n" not in text.strip("\n")


def is_transcript(text: str, name: str | None) -> bool:
    """A reply written as a script line, her name first (「妻「やめろ。」」), or the header of
    the real exchanges shown in her prompt: the model continued the prompt's format."""
    head = text.strip()
    if name and head.startswith(tuple(name + mark for mark in "「『：:")):
        return True
    return HEADER.format(name="") in head


def reply_format(
    texts: Sequence[str],
    stopped: Sequence[bool],
    allowed_latin: frozenset[str] = frozenset(),
    name: str | None = None,
) -> dict[str, object]:
    """Shares over all replies; ``ok`` = non-empty, clean, one line, ended at the reply end/EOS,
    and no transcript line (:func:`is_transcript`; ``name``: hers)."""
    n = len(texts)
    if n == 0:
        return {
            "n": 0,
            "ok_rate": 0.0,
            "clean_rate": 0.0,
            "unclean": [],
            "empty_rate": 0.0,
            "multi_line_rate": 0.0,
            "cut_off_rate": 0.0,
            "transcript_rate": 0.0,
        }
    bad = [(i, junk(t, allowed_latin)) for i, t in enumerate(texts)]
    bad = [(i, j) for i, j in bad if j]
    unclean = {i for i, _ in bad}
    transcript = [is_transcript(t, name) for t in texts]
    ok = sum(
        is_one_line(t) and s and i not in unclean and not transcript[i]
        for i, (t, s) in enumerate(zip(texts, stopped, strict=True))
    )
    empty = sum(not t.strip() for t in texts)
    multi = sum(bool(t.strip()) and not is_one_line(t) for t in texts)
    cut = sum(not s for s in stopped)
    return {
        "n": n,
        "ok_rate": round(ok / n, 4),
        "clean_rate": round(1 - len(unclean) / n, 4),
        "unclean": [{"index": i, "text": texts[i], "junk": j[:5]} for i, j in bad],
        "empty_rate": round(empty / n, 4),
        "multi_line_rate": round(multi / n, 4),
        "cut_off_rate": round(cut / n, 4),
        "transcript_rate": round(sum(transcript) / n, 4),
    }
