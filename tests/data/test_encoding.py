"""Encoding detection: UTF-8 (BOM or not), Shift_JIS/CP932, EUC-JP, CRLF; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from serifu.data.encoding import decode_bytes, read_text_file
from serifu.errors import SerifuError

TEXT = "【茜】「ほんまに？　髙橋先生、めっちゃ優しいやん」\n【主人公】「そうだな……」\n"


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("cp932"), "cp932"),
        (TEXT.replace("髙", "高").encode("euc-jp"), "euc-jp"),
    ],
)
def test_detects_encodings(raw: bytes, encoding: str) -> None:
    decoded = decode_bytes(raw, path="x.txt")
    assert decoded.encoding == encoding
    assert decoded.text.startswith("【茜】「ほんまに？")
    assert not decoded.text.startswith("\ufeff")


def test_crlf_and_cr_become_lf() -> None:
    assert decode_bytes(b"a\r\nb\rc\n", path="x").text == "a\nb\nc\n"


def test_encoding_override_and_its_error_names_the_offset() -> None:
    raw = TEXT.encode("cp932")
    assert decode_bytes(raw, path="x", encoding="shift_jis").text == TEXT
    with pytest.raises(SerifuError, match=r"x: cannot be decoded as utf-8: byte offset 0"):
        decode_bytes(raw, path="x", encoding="utf-8")


def test_undecodable_bytes_name_the_byte_offset() -> None:
    raw = b"ok" + b"\x80\xff\xfe\x80"
    with pytest.raises(SerifuError, match=r"utf-8 at byte offset 2"):
        decode_bytes(raw, path="bad.txt")


def test_binary_and_empty_files(tmp_path: Path) -> None:
    binary = tmp_path / "a.bin"
    binary.write_bytes(b"PK\x03\x04\x00\x00\x01")
    with pytest.raises(SerifuError, match="binary file"):
        read_text_file(binary)
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n", encoding="utf-8")
    with pytest.raises(SerifuError, match=r"empty\.txt: the file is empty"):
        read_text_file(empty)
    with pytest.raises(SerifuError, match="file not found"):
        read_text_file(tmp_path / "missing.txt")
