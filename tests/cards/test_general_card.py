"""The general card: optional facts, generated questions, the sample cast unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu import plugins
from serifu.characters import CharacterCard, CharacterPack, system_prompt
from serifu.errors import SerifuError

EXPECTED = Path(__file__).parent / "data" / "sample_system_prompts.json"


def test_sample_system_prompts_are_byte_identical() -> None:
    """Captured from the cards before they were generalised."""
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    got = {cid: system_prompt(reg.item.card()) for cid, reg in plugins.characters().items()}
    assert set(expected) <= set(got)
    for cid, prompt in expected.items():
        assert got[cid] == prompt, cid


def test_sample_cards_keep_their_questions_and_facts() -> None:
    card = plugins.get_character("akane").card()
    assert not card.questions_generated and len(card.questions) >= 11
    assert [k for k, _, _ in card.facts()][:3] == ["reading", "age", "grade"]
    assert ("blood_type", "血液型", "B型") in card.facts()


def test_a_card_with_few_facts(tmp_path: Path) -> None:
    card = CharacterCard(id="mio", name="澪", age=16, club="茶道部", personality="静か。")
    assert card.short_name == "澪"
    assert card.facts() == [("age", "年齢", "16歳"), ("club", "部活", "茶道部")]
    assert card.questions_generated
    assert [q.q for q in card.questions] == ["年齢を教えて。", "部活を教えて。"]
    assert card.questions[0].answers == [["16", "１６"]]
    prompt = system_prompt(card).splitlines()
    assert prompt == [
        "あなたは以下の設定に従ってロールプレイをしてください。",
        "名前は澪です。",
        "年齢は16歳です。",
        "部活は茶道部です。",
        "性格：静か。",
        "この設定に従って、以下の入力に対して適切な応答を返してください：",
    ]


def test_card_system_prompt_and_lore_facts() -> None:
    card = CharacterCard(
        id="x",
        name="X",
        system_prompt="{{original}} {{char}}として話す。",
        description="{{user}}の幼なじみ。",
        interop={
            "character_book": {
                "entries": [
                    {"keys": ["色"], "content": "青", "name": "好きな色", "enabled": True},
                    {"keys": ["秘密"], "content": "長い\n伝承", "name": "秘密"},
                    {"keys": ["犬"], "content": "柴犬", "name": "ペット", "enabled": False},
                ]
            }
        },
    )
    assert card.facts() == [("lore:好きな色", "好きな色", "青")]
    lines = system_prompt(card).splitlines()
    assert lines[0] == "あなたは以下の設定に従ってロールプレイをしてください。 Xとして話す。"
    assert "主人公の幼なじみ。" in lines and "好きな色：青" in lines


def _pack(tmp_path: Path, folder: str, card_id: str, questions: int, minimum: int) -> CharacterPack:
    root = tmp_path / folder
    root.mkdir()
    text = f'id = "{card_id}"\nname = "名"\nage = 1\n' + "".join(
        f'\n[[questions]]\nq = "q{i}"\nanswers = [["a"]]\n' for i in range(questions)
    )
    (root / "card.toml").write_text(text, encoding="utf-8")
    return CharacterPack(id=folder, card_path=root / "card.toml", scripts=[], min_questions=minimum)


def test_pack_id_must_equal_card_id(tmp_path: Path) -> None:
    with pytest.raises(SerifuError, match="differs from the pack's id 'b'"):
        _pack(tmp_path, "b", "a", 0, 0).card()


def test_question_minimum_applies_where_set(tmp_path: Path) -> None:
    with pytest.raises(
        SerifuError, match="has 3 \\[\\[questions\\]\\]; this pack needs at least 11"
    ):
        _pack(tmp_path, "c", "c", 3, 11).card()
    assert len(_pack(tmp_path, "d", "d", 3, 0).card().questions) == 3
    assert len(_pack(tmp_path, "e", "e", 11, 11).card().questions) == 11
