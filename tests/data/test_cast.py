"""The sample cast: enough lines and pairs per heroine; the report preset on akane's markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from serifu import plugins
from serifu.data.characters import character_pairs, character_utterances, count_character_lines

HEROINES = ("akane", "himari", "hina", "kaede", "rei", "sayaka", "shiori", "yuzuha")


@pytest.mark.parametrize("cid", HEROINES)
def test_each_heroine_has_300_lines_and_200_pairs(cid: str) -> None:
    packs = plugins.characters()
    assert cid in packs, f"{cid} is missing from the sample cast"
    pack = packs[cid].item
    card = pack.card()
    assert count_character_lines(pack) >= 300
    pairs = character_pairs(pack)
    assert len(pairs) >= 200
    assert all(p.character == card.short_name and p.query_speaker != card.short_name for p in pairs)
    assert all(p.reply and not p.reply.endswith("\n") for p in pairs)
    speakers = {u.speaker for u in character_utterances(pack)}
    assert card.protagonist in speakers


def test_report_preset_visibly_cleans_akanes_markers(tmp_path: Path) -> None:
    from datasets import load_from_disk

    from serifu.config.data import DataConfig
    from serifu.data.build import build_character_dataset

    assert "akane" in plugins.characters(), "akane is missing from the sample cast"
    raw = [
        u.text for u in character_utterances(plugins.get_character("akane")) if u.speaker == "茜"
    ]
    assert (
        any("gaiji" in t for t in raw)
        and any("@" in t for t in raw)
        and any("//" in t for t in raw)
    )
    result = build_character_dataset("akane", tmp_path / "akane", config=DataConfig(format="lines"))
    rules = result.rules
    assert rules["remove_gaiji"]["changed"] > 0 and rules["remove_at"]["changed"] > 0
    assert rules["drop_double_slash"]["dropped"] == sum("//" in t for t in raw)
    dd = load_from_disk(str(tmp_path / "akane"))
    texts = [t for split in dd for t in dd[split]["text"]]
    assert len(texts) == len(raw) - rules["drop_double_slash"]["dropped"]
    assert not [t for t in texts if "gaiji" in t or "@" in t or "//" in t or not t.endswith("\n")]
    assert result.info["character_id"] == "akane" and result.info["character"] == "茜"
