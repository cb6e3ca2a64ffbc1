"""Hub models and folders without a plugin template use the tokenizer's own chat template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.modeling import ResolvedBase, load_tokenizer, resolve_base
from serifu.prompts.chat_template import ChatTemplate, template_for

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NO_SYSTEM = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]{% else %}{{ m['content'] }}</s>{% endif %}"
    "{% endfor %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_base("tiny-llama"))


def test_chatml_template_renders_system_history_and_query(tokenizer) -> None:
    tokenizer.chat_template = CHATML
    template = ChatTemplate(tokenizer)
    assert template.system_role and template.reply_end == "<|im_end|>\n"
    text = template.render("元気？", character="茜", system="設定", history=[("やあ", "おはよう")])
    assert text == (
        "<|im_start|>system\n設定<|im_end|>\n<|im_start|>user\nやあ<|im_end|>\n"
        "<|im_start|>assistant\nおはよう<|im_end|>\n<|im_start|>user\n元気？<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_template_without_system_role_gets_it_in_the_first_user_turn(tokenizer) -> None:
    tokenizer.chat_template = NO_SYSTEM
    template = ChatTemplate(tokenizer)
    assert not template.system_role and template.reply_end == "</s>\n"
    text = template.render("元気？", character="茜", system="設定")
    assert text == "[INST] 設定\n\n元気？ [/INST]"  # BOS left to the tokenizer


def test_hub_id_without_chat_template_warns_and_uses_line(tokenizer) -> None:
    tokenizer.chat_template = None
    base = ResolvedBase(id="someone/model", template="line", lora_targets=("all-linear",))
    with pytest.warns(UserWarning, match="no chat_template"):
        assert template_for(base, tokenizer).id == "line"
    tokenizer.chat_template = CHATML
    assert isinstance(template_for(base, tokenizer), ChatTemplate)


def test_plugin_models_keep_their_template(tokenizer) -> None:
    tokenizer.chat_template = CHATML
    assert template_for(resolve_base("tiny-llama"), tokenizer).id == "llama2"


def test_model_folder_with_a_chat_template(tmp_path: Path, tokenizer) -> None:
    """A folder whose model_type Serifu does not know, with a chat template in its tokenizer."""
    tokenizer.chat_template = CHATML
    folder = tmp_path / "model"
    tokenizer.save_pretrained(folder)
    source = Path(resolve_base("tiny-llama").source())
    config = json.loads((source / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "mystery"}))
    base = resolve_base(str(folder))
    loaded = load_tokenizer(base)
    template = template_for(base, loaded)
    assert isinstance(template, ChatTemplate)
    assert template.render("q", character="c").endswith("<|im_start|>assistant\n")


def test_encode_prompt_keeps_user_text_plain(tokenizer) -> None:
    """The lead's encoder fills the template's slots: user text stays text, markup stays markup."""
    from serifu.prompts.encode import encode_prompt

    tokenizer.chat_template = CHATML
    template = ChatTemplate(tokenizer)
    ids = encode_prompt(
        tokenizer, template, "元気？", character="茜", system="設定", history=[("やあ", "おはよう")]
    )
    text = tokenizer.decode(ids, skip_special_tokens=True)
    rendered = template.render(
        "元気？", character="茜", system="設定", history=[("やあ", "おはよう")]
    )
    assert text.replace(" ", "") == rendered.replace(" ", "")
