"""The query sets: 100 shipped openers plus each heroine's profile questions."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from serifu import plugins
from serifu.errors import SerifuError
from serifu.queries import OPENER, PROFILE, build_queries, builtin_openers, read_openers


def test_hundred_distinct_japanese_openers() -> None:
    openers = builtin_openers()
    assert len(openers) == 100
    assert len(set(openers)) == 100
    for text in openers:
        assert any(unicodedata.name(c, "").startswith(("HIRAGANA", "CJK")) for c in text), text
        assert "\n" not in text and len(text) <= 60


@pytest.mark.parametrize("character", sorted(plugins.characters()))
def test_every_heroine_gets_111_or_more_queries(character: str) -> None:
    card = plugins.get_character(character).card()
    queries = build_queries(card)
    assert sum(q.kind == OPENER for q in queries) == 100
    profile = [q for q in queries if q.kind == PROFILE]
    assert len(profile) >= 11 and all(q.answers for q in profile)
    limited = build_queries(card, limit=2)
    assert [q.kind for q in limited] == [OPENER, OPENER, PROFILE, PROFILE]


def test_user_openers_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# my openers\nやあ\n\n元気？\n", encoding="utf-8")
    assert read_openers(path) == ["やあ", "元気？"]
    path.write_text("やあ\nだめ\tです\n", encoding="utf-8")
    with pytest.raises(SerifuError, match=r"mine.txt, line 2"):
        read_openers(path)
    path.write_bytes("やあ".encode("shift_jis"))
    with pytest.raises(SerifuError, match="UTF-8"):
        read_openers(path)
    with pytest.raises(SerifuError, match="not found"):
        read_openers(tmp_path / "missing.txt")
