"""Each template's rendered text, pinned exactly (with/without system prompt, with history)."""

from __future__ import annotations

import pytest

from serifu import plugins
from serifu.prompts import reply_text

SYS = "あなたは茜です。"
HIST = [("やあ", "おはようさん"), ("元気？", "めっちゃ元気やで")]

EXPECTED = {
    ("line", False, False): "ユーザー: 今日どうする？\nシステム: ",
    ("line", True, False): "あなたは茜です。\nユーザー: 今日どうする？\nシステム: ",
    (
        "line",
        True,
        True,
    ): "あなたは茜です。\nユーザー: やあ\nシステム: おはようさん\nユーザー: 元気？\nシステム: めっちゃ元気やで\nユーザー: 今日どうする？\nシステム: ",
    ("llama2", False, False): "[INST] 今日どうする？ [/INST] ",
    (
        "llama2",
        True,
        False,
    ): "[INST] <<SYS>>\nあなたは茜です。\n<</SYS>>\n\n今日どうする？ [/INST] ",
    (
        "llama2",
        True,
        True,
    ): "[INST] <<SYS>>\nあなたは茜です。\n<</SYS>>\n\nやあ [/INST] おはようさん\n[INST] 元気？ [/INST] めっちゃ元気やで\n[INST] 今日どうする？ [/INST] ",
    ("novel", False, False): "主人公「今日どうする？」\n茜「",
    ("novel", True, False): "あなたは茜です。\n主人公「今日どうする？」\n茜「",
    (
        "novel",
        False,
        True,
    ): "主人公「やあ」\n茜「おはようさん」\n主人公「元気？」\n茜「めっちゃ元気やで」\n主人公「今日どうする？」\n茜「",
    (
        "gemma",
        False,
        False,
    ): "<start_of_turn>user\n今日どうする？<end_of_turn>\n<start_of_turn>model\n",
    (
        "gemma",
        True,
        False,
    ): "<start_of_turn>user\nあなたは茜です。\n\n今日どうする？<end_of_turn>\n<start_of_turn>model\n",
    (
        "gemma",
        True,
        True,
    ): "<start_of_turn>user\nあなたは茜です。\n\nやあ<end_of_turn>\n<start_of_turn>model\nおはようさん<end_of_turn>\n<start_of_turn>user\n元気？<end_of_turn>\n<start_of_turn>model\nめっちゃ元気やで<end_of_turn>\n<start_of_turn>user\n今日どうする？<end_of_turn>\n<start_of_turn>model\n",
}


@pytest.mark.parametrize(("template_id", "with_system", "with_history"), list(EXPECTED))
def test_rendered_text_is_pinned(template_id: str, with_system: bool, with_history: bool) -> None:
    template = plugins.get_prompt_template(template_id)
    text = template.render(
        "今日どうする？",
        character="茜",
        system=SYS if with_system else None,
        history=HIST if with_history else (),
    )
    assert text == EXPECTED[(template_id, with_system, with_history)]


@pytest.mark.parametrize("template_id", ["line", "llama2", "novel", "gemma"])
def test_reply_end_ends_with_newline_and_is_cut(template_id: str) -> None:
    template = plugins.get_prompt_template(template_id)
    assert template.reply_end.endswith("\n")
    assert reply_text("ほんまに？" + template.reply_end + "ユーザー: 続き", template.reply_end) == (
        "ほんまに？",
        True,
    )
    assert reply_text("途中まで", template.reply_end) == ("途中まで", False)
