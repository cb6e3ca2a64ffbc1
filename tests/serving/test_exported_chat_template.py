"""Exported tokenizers carry a ``chat_template`` that renders Serifu's prompt template:
``apply_chat_template`` gives the very text and token ids the chatbot feeds her."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu import plugins
from serifu.modeling import load_tokenizer, resolve_base
from serifu.prompts.chat_template import jinja_chat_template

HISTORY = [("やあ", "おはよう"), ("it's ok?", "'quotes' and {{ braces }} stay text")]


def messages(
    query: str, system: str | None, history: list[tuple[str, str]]
) -> list[dict[str, str]]:
    out = [{"role": "system", "content": system}] if system else []
    for user, reply in history:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return [*out, {"role": "user", "content": query}]


@pytest.mark.parametrize("template_id", ["line", "llama2", "novel", "gemma"])
@pytest.mark.parametrize(
    ("system", "history"), [(None, []), ("設定です", []), ("設定", HISTORY), (None, HISTORY)]
)
def test_jinja_template_renders_like_serifus_template(
    template_id: str, system: str | None, history: list[tuple[str, str]]
) -> None:
    tokenizer = load_tokenizer(resolve_base("tiny-gemma"))
    template = plugins.get_prompt_template(template_id)
    tokenizer.chat_template = jinja_chat_template(template, "茜", bos=True)
    text = tokenizer.apply_chat_template(
        messages("元気？", system, history), tokenize=False, add_generation_prompt=True
    )
    expected = template.render("元気？", character="茜", system=system, history=history)
    assert text == tokenizer.bos_token + expected


def test_unknown_template_gets_none() -> None:
    class Other:
        id = "someone-elses"

    assert jinja_chat_template(Other(), "茜", bos=False) is None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA for akane on tiny-gemma (as training saves it), exported merged."""
    from peft import LoraConfig, get_peft_model

    from serifu.inference.export import export_merged
    from serifu.modeling import load_model

    root = tmp_path_factory.mktemp("export-template")
    base = resolve_base("tiny-gemma")
    model = load_model(base, quantize=False, device="cpu")
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=list(base.lora_targets)))
    adapter = root / "adapter"
    peft.save_pretrained(str(adapter))
    info = {"base_model": "tiny-gemma", "dataset": {"character_id": "akane"}}
    (adapter / "serifu.json").write_text(json.dumps(info), encoding="utf-8")
    del peft, model
    return export_merged(adapter, root / "merged")


def test_exported_tokenizer_encodes_like_her_chatbot(exported: Path) -> None:
    """System + history + query through the exported tokenizer's apply_chat_template equals
    the ids and text her chatbot (gemma template) feeds the model."""
    from transformers import AutoTokenizer

    from serifu.characters import system_prompt
    from serifu.inference.chatbot import load_chatbot

    tokenizer = AutoTokenizer.from_pretrained(str(exported))
    assert tokenizer.chat_template and "<start_of_turn>" in tokenizer.chat_template
    bot = load_chatbot(model="tiny-gemma", character="akane", device="cpu", best_of=1)
    system = system_prompt(plugins.get_character("akane").card())
    assert bot.system == system
    conversation = messages("部活どう？", system, HISTORY[:1])
    ids = tokenizer.apply_chat_template(conversation, tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    assert list(ids) == bot.encode_prompt("部活どう？", HISTORY[:1])
    text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert text == tokenizer.bos_token + bot.render_prompt("部活どう？", HISTORY[:1])
