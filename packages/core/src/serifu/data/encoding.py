"""Decoding script files: UTF-8 (with or without BOM), Shift_JIS/CP932 and EUC-JP, CRLF or LF."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

from serifu.errors import SerifuError

CANDIDATES: tuple[str, ...] = ("utf-8", "cp932", "euc-jp")
"""Encodings tried, in order, when none is given."""

_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "utf8": "utf-8"}


@dataclass(frozen=True)
class Decoded:
    """A decoded file: text with ``\\n`` line ends, and the encoding that decoded it."""

    text: str
    encoding: str


_IMPLAUSIBLE = re.compile("[\u0080-\u009f\ue000-\uf8ff]")


def _japanese_score(text: str) -> float:
    """Share of characters that are plausible in Japanese text (kana, kanji, ASCII, punctuation)."""
    if not text:
        return 0.0
    good = 0
    for ch in text:
        o = ord(ch)
        if (
            o < 0x80
            or 0x3000 <= o <= 0x30FF  # punctuation, hiragana, katakana
            or 0x4E00 <= o <= 0x9FFF  # common kanji
            or 0xFF01 <= o <= 0xFF5E  # full-width forms (half-width kana count as unlikely)
        ):
            good += 1
    return good / len(text)


def _first_bad_offset(data: bytes, encoding: str) -> int | None:
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_bytes(data: bytes, *, path: Path | str, encoding: str | None = None) -> Decoded:
    """Decode ``data`` (detecting the encoding unless given); errors name the file and byte offset."""
    if b"\x00" in data[:8192] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SerifuError(
            "this looks like a binary file (it contains NUL bytes), not a text script", path=path
        )
    if encoding is not None:
        name = _ALIASES.get(encoding.lower(), encoding)
        try:
            codecs.lookup(name)
        except LookupError:
            raise SerifuError(
                f"unknown encoding {encoding!r} (try utf-8, cp932 or euc-jp)"
            ) from None
        if name.replace("_", "-").lower() in ("utf-8", "utf8") and data.startswith(codecs.BOM_UTF8):
            name = "utf-8-sig"
        try:
            return Decoded(_normalize_newlines(data.decode(name)), name)
        except UnicodeDecodeError as exc:
            raise SerifuError(
                f"cannot be decoded as {encoding}: byte offset {exc.start} "
                f"(0x{data[exc.start]:02x}) is not valid; check --encoding",
                path=path,
            ) from None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return Decoded(_normalize_newlines(data.decode("utf-8-sig")), "utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SerifuError(
                f"starts with a UTF-8 BOM but byte offset {exc.start} is not valid UTF-8", path=path
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Decoded(_normalize_newlines(data.decode("utf-16")), "utf-16")
    try:
        return Decoded(_normalize_newlines(data.decode("utf-8")), "utf-8")
    except UnicodeDecodeError:
        pass
    decoded: list[tuple[float, str, str]] = []
    for name in CANDIDATES[1:]:
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        if _IMPLAUSIBLE.search(text):  # C1 controls or private-use: a lucky decode, not text
            continue
        decoded.append((_japanese_score(text), name, text))
    if decoded:
        _, name, text = max(decoded, key=lambda item: item[0])
        return Decoded(_normalize_newlines(text), name)
    offsets = ", ".join(
        f"{name} at byte offset {_first_bad_offset(data, name)}" for name in CANDIDATES
    )
    raise SerifuError(
        f"cannot be decoded as UTF-8, Shift_JIS (cp932) or EUC-JP ({offsets}); "
        "pass --encoding if you know the file's encoding",
        path=path,
    )


def read_text_file(path: Path | str, encoding: str | None = None) -> Decoded:
    """Read and decode a script file; a missing, empty or binary file is a :class:`SerifuError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SerifuError("file not found", path=path) from None
    except IsADirectoryError:
        raise SerifuError("is a folder, not a script file", path=path) from None
    decoded = decode_bytes(data, path=path, encoding=encoding)
    if not decoded.text.strip():
        raise SerifuError("the file is empty (no text to read)", path=path)
    return decoded
