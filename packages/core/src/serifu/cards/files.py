"""Reading and writing card files: ``.png`` (tEXt ``chara``/``ccv3``), ``.json``, ``.charx``."""

from __future__ import annotations

import base64
import binascii
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serifu.cards import png
from serifu.errors import SerifuError
from serifu.fsutil import atomic_write_bytes

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_JSON_BYTES = png.MAX_TEXT_CHUNK


@dataclass
class CardFile:
    """A card as read from a file: its spec and its ``data`` object, plus an image if any."""

    spec: str  # "chara_card_v1" | "chara_card_v2" | "chara_card_v3"
    data: dict[str, Any]
    portrait: bytes | None = None


def read_card_file(path: Path) -> CardFile:
    """Read a ``.png``, ``.json`` or ``.charx`` card; every problem is a SerifuError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SerifuError("card file not found", path=path) from None
    if size > MAX_FILE_BYTES:
        raise SerifuError(f"the file is {size} bytes, over the {MAX_FILE_BYTES} limit", path=path)
    raw = path.read_bytes()
    if raw.startswith(png.SIGNATURE):
        return _from_png(raw, path)
    if raw.startswith(b"PK\x03\x04"):
        return _from_charx(raw, path)
    return CardFile(*parse_card_json(raw, path))


def _from_png(raw: bytes, path: Path) -> CardFile:
    texts = png.text_chunks(raw, path)
    key = "ccv3" if "ccv3" in texts else "chara" if "chara" in texts else None  # spec: prefer V3
    if key is None:
        raise SerifuError(
            "this PNG has no character card (no 'chara' or 'ccv3' tEXt chunk)", path=path
        )
    try:
        decoded = base64.b64decode(b"".join(texts[key].split()), validate=True)
    except (binascii.Error, ValueError):
        raise SerifuError(f"the PNG's {key!r} chunk is not valid base64", path=path) from None
    spec, data = parse_card_json(decoded, path)
    return CardFile(spec, data, raw)


def _from_charx(raw: bytes, path: Path) -> CardFile:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            try:
                info = zf.getinfo("card.json")
            except KeyError:
                raise SerifuError("this .charx has no card.json", path=path) from None
            if info.file_size > MAX_JSON_BYTES:
                raise SerifuError("the .charx card.json is too big", path=path)
            spec, data = parse_card_json(zf.read(info), path)
            portrait = _charx_icon(zf, data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise SerifuError(f"not a readable .charx zip ({exc})", path=path) from None
    return CardFile(spec, data, portrait)


def _charx_icon(zf: zipfile.ZipFile, data: dict[str, Any]) -> bytes | None:
    for asset in data.get("assets") or []:
        uri = str(asset.get("uri", "")) if isinstance(asset, dict) else ""
        if asset.get("type") == "icon" and uri.startswith("embeded://") and uri.endswith(".png"):
            name = uri.removeprefix("embeded://")
            if name in zf.namelist() and zf.getinfo(name).file_size <= MAX_FILE_BYTES:
                return zf.read(name)
    return None


def parse_card_json(raw: bytes, path: Path | str) -> tuple[str, dict[str, Any]]:
    """(spec, data) of a card's JSON bytes: V2/V3 (``data`` object) or a bare V1 card."""
    if len(raw) > MAX_JSON_BYTES:
        raise SerifuError(f"the card JSON is over the {MAX_JSON_BYTES} byte limit", path=path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SerifuError(f"the card is not UTF-8 text (byte {exc.start})", path=path) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SerifuError(
            f"the card is not valid JSON ({exc.msg})", path=path, line=exc.lineno
        ) from None
    if not isinstance(obj, dict):
        raise SerifuError("the card JSON is not an object", path=path)
    spec = obj.get("spec")
    version = str(obj.get("spec_version", ""))
    if spec is None and isinstance(obj.get("name"), str) and "data" not in obj:
        return "chara_card_v1", obj
    wanted = {"chara_card_v2": "2", "chara_card_v3": "3"}
    if spec not in wanted or version.split(".")[0] != wanted[spec]:
        raise SerifuError(
            f"unsupported card spec {spec!r} version {version!r} "
            "(Serifu reads chara_card_v2 2.x and chara_card_v3 3.x)",
            path=path,
        )
    data = obj.get("data")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("name"), str)
        or not data["name"].strip()
    ):
        raise SerifuError("the card has no data object with a name", path=path)
    return str(spec), data


def write_card_file(
    out: Path, v2: dict[str, Any], v3: dict[str, Any] | None, portrait: bytes | None
) -> None:
    """Write ``.png`` (tEXt ``chara`` = V2, plus ``ccv3`` = V3), ``.charx`` or ``.json``."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".png":
        texts = {"chara": _b64(v2)}
        if v3 is not None:
            texts["ccv3"] = _b64(v3)
        atomic_write_bytes(out, png.with_text_chunks(portrait or png.blank_png(), texts, out))
    elif suffix == ".charx":
        if v3 is None:
            raise SerifuError(".charx files hold V3 cards; use --format ccv3", path=out)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("card.json", json.dumps(v3, ensure_ascii=False, indent=2))
            if portrait is not None:
                zf.writestr("assets/icon/images/main.png", portrait)
        atomic_write_bytes(out, buffer.getvalue())
    elif suffix == ".json":
        atomic_write_bytes(out, json.dumps(v3 or v2, ensure_ascii=False, indent=2).encode() + b"\n")
    else:
        raise SerifuError("the output must end in .png, .json or .charx", path=out)


def _b64(obj: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(obj, ensure_ascii=False).encode("utf-8")).decode("ascii")
