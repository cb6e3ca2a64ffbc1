"""PNG ``tEXt`` chunks, read and written with the standard library (zlib CRCs, struct)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from serifu.errors import SerifuError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_CHUNK = 16 * 1024 * 1024
"""Bigger text chunks are refused (a card is kilobytes; an embedded lorebook maybe a few MB)."""


def chunks(data: bytes, path: Path | str) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk up to IEND; CRCs and lengths are checked."""
    if not data.startswith(SIGNATURE):
        raise SerifuError("not a PNG file (bad signature)", path=path)
    out: list[tuple[bytes, bytes]] = []
    pos = len(SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise SerifuError("truncated PNG (no IEND chunk)", path=path)
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in (b"tEXt", b"iTXt", b"zTXt") and length > MAX_TEXT_CHUNK:
            raise SerifuError(
                f"PNG text chunk of {length} bytes is over the {MAX_TEXT_CHUNK} byte limit",
                path=path,
            )
        end = pos + 8 + length + 4
        if end > len(data):
            raise SerifuError(f"truncated PNG (the {kind!r} chunk is cut short)", path=path)
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + payload) & 0xFFFFFFFF != crc:
            raise SerifuError(f"corrupt PNG (bad CRC in a {kind!r} chunk)", path=path)
        out.append((kind, payload))
        pos = end
        if kind == b"IEND":
            return out


def text_chunks(data: bytes, path: Path | str) -> dict[str, bytes]:
    """``tEXt`` keyword -> raw text bytes (the first chunk of each keyword wins)."""
    found: dict[str, bytes] = {}
    for kind, payload in chunks(data, path):
        if kind != b"tEXt" or b"\x00" not in payload:
            continue
        keyword, text = payload.split(b"\x00", 1)
        found.setdefault(keyword.decode("latin-1").lower(), text)
    return found


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def with_text_chunks(data: bytes, texts: dict[str, str], path: Path | str) -> bytes:
    """The PNG with ``texts`` as tEXt chunks before IEND; old chunks of those keywords go."""
    drop = {k.lower() for k in texts}
    out = [SIGNATURE]
    for kind, payload in chunks(data, path):
        if kind == b"tEXt" and payload.split(b"\x00", 1)[0].decode("latin-1").lower() in drop:
            continue
        if kind == b"IEND":
            out += [
                _chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
                for k, v in texts.items()
            ]
        out.append(_chunk(kind, payload))
    return b"".join(out)


def blank_png(width: int = 1, height: int = 1) -> bytes:
    """A small opaque white RGB PNG (a portrait when none is given)."""
    raw = b"".join(b"\x00" + b"\xff\xff\xff" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )
