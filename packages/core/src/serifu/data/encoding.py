"""Decoding script files: UTF-8 (with or without BOM), Shift_JIS/CP932 and EUC-JP, CRLF or LF."""

from __future__ import annotations

import codecs
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from serifu.errors import SerifuError

MAX_LINE_CHARS = 20_000
"""Longest line (in characters) a reader accepts by default (``--max-line-chars``): real
script lines are far shorter (the longest in the Aozora plays: ~2,000), and unbounded lines
crash the morphological analyser and exhaust memory downstream."""

MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest script file read (the whole sample cast is under 1 MB)."""

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


def _wide(name: str) -> bool:
    """UTF-16/UTF-32 codecs, whose text legitimately contains NUL bytes."""
    return codecs.lookup(name).name.startswith(("utf-16", "utf-32"))


def decode_bytes(data: bytes, *, path: Path | str, encoding: str | None = None) -> Decoded:
    """Decode ``data`` (detecting the encoding unless given); errors name the file and byte offset."""
    name = None
    if encoding is not None:
        name = _ALIASES.get(encoding.lower(), encoding)
        try:
            codecs.lookup(name)
        except LookupError:
            raise SerifuError(
                f"unknown encoding {encoding!r} (try utf-8, cp932 or euc-jp)"
            ) from None
    has_bom16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in data[:8192] and not has_bom16 and not (name and _wide(name)):
        raise SerifuError(
            "this looks like a binary file (it contains NUL bytes), not a text script; "
            "if it is UTF-16 without a byte-order mark, pass --encoding utf-16-le (or utf-16-be)",
            path=path,
        )
    if encoding is not None:
        assert name is not None
        if name.replace("_", "-").lower() in ("utf-8", "utf8") and data.startswith(codecs.BOM_UTF8):
            name = "utf-8-sig"
        try:
            return Decoded(_normalize_newlines(data.decode(name).removeprefix("\ufeff")), name)
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


def check_line_lengths(text: str, *, path: Path | str, max_line_chars: int) -> None:
    """A :class:`SerifuError` naming the first line longer than ``max_line_chars`` characters."""
    if len(text) <= max_line_chars:
        return
    for lineno, row in enumerate(text.split("\n"), start=1):
        if len(row) > max_line_chars:
            raise SerifuError(
                f"line is {len(row):,} characters long, over the limit of {max_line_chars:,} "
                "(is this really a script? a missing line break?); raise the limit with "
                "--max-line-chars if it is intended",
                path=path,
                line=lineno,
            )


def read_text_file(
    path: Path | str, encoding: str | None = None, *, max_line_chars: int = MAX_LINE_CHARS
) -> Decoded:
    """Read and decode a script file; a missing, empty or binary file, or a line longer than
    ``max_line_chars``, is a :class:`SerifuError`."""
    path = Path(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise SerifuError("not a regular file (a device or pipe?), not a script", path=path)
        if info.st_size > MAX_FILE_BYTES:
            raise SerifuError(
                f"the file is {info.st_size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit "
                "of a script file",
                path=path,
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise SerifuError("file not found", path=path) from None
    except IsADirectoryError:
        raise SerifuError("is a folder, not a script file", path=path) from None
    except NotADirectoryError:
        raise SerifuError(
            "file not found (a part of the path is a file, not a folder)", path=path
        ) from None
    except PermissionError:
        raise SerifuError("permission denied: cannot read this file", path=path) from None
    except OSError as exc:
        raise SerifuError(f"cannot read this file ({exc.strerror or exc})", path=path) from None
    decoded = decode_bytes(data, path=path, encoding=encoding)
    if not decoded.text.strip():
        raise SerifuError("the file is empty (no text to read)", path=path)
    check_line_lengths(decoded.text, path=path, max_line_chars=max_line_chars)
    return decoded
