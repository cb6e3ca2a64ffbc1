"""Dataset rows -> token examples: dialogue masks the prompt, lines learn every token."""

from __future__ import annotations

from serifu import plugins
from serifu.modeling import load_tokenizer, resolve_base
from serifu.training.examples import IGNORE, context_history, encode_rows


def test_dialogue_labels_mask_the_prompt_exactly() -> None:
    base = resolve_base("tiny-llama")
    tok = load_tokenizer(base)
    template = plugins.get_prompt_template(base.template)
    row = {
        "context": [],
        "query": "職員室はどこ？",
        "query_speaker": "主人公",
        "reply": "一階。",
        "character": "玲",
        "scene": "1",
    }
    [ex] = encode_rows(
        [row],
        fmt="dialogue",
        tokenizer=tok,
        template=template,
        system="設定",
        add_special_tokens=True,
        max_length=256,
    )
    prompt_ids = tok(template.render("職員室はどこ？", character="玲", system="設定"))["input_ids"]
    n = len(prompt_ids)
    assert ex.input_ids[:n] == prompt_ids
    assert ex.labels[:n] == [IGNORE] * n
    learned = [t for t in ex.labels if t != IGNORE]
    assert tok.decode(learned) == "一階。" + template.reply_end


def test_lines_labels_are_the_input_ids() -> None:
    base = resolve_base("tiny-neox")
    tok = load_tokenizer(base)
    [ex] = encode_rows(
        [{"text": "はい、参りましょう\n"}],
        fmt="lines",
        tokenizer=tok,
        template=None,
        system=None,
        add_special_tokens=True,
        max_length=64,
    )
    assert (
        ex.labels == ex.input_ids
        and tok.decode(ex.input_ids, skip_special_tokens=True) == "はい、参りましょう\n"
    )


def test_long_dialogue_prompt_is_cut_from_the_left() -> None:
    base = resolve_base("tiny-llama")
    tok = load_tokenizer(base)
    row = {"context": [], "query": "あ" * 300, "reply": "うん。", "character": "玲"}
    [ex] = encode_rows(
        [row],
        fmt="dialogue",
        tokenizer=tok,
        template=plugins.get_prompt_template("llama2"),
        system=None,
        add_special_tokens=True,
        max_length=32,
    )
    assert (
        len(ex.input_ids) == 32 and tok.decode([t for t in ex.labels if t != IGNORE]) == "うん。\n"
    )


def test_a_prompt_that_fits_is_kept_whole() -> None:
    """A prompt longer than half the room left by the reply, but within it, stays whole (a
    negative slice start once kept only its last tokens: akane's card was cut mid-sentence at
    max_length 512)."""
    from serifu.prompts.encode import encode_prompt

    base = resolve_base("tiny-llama")
    tok = load_tokenizer(base)
    template = plugins.get_prompt_template("llama2")
    row = {"context": [], "query": "あ" * 40, "reply": "うん。", "character": "玲"}
    prompt = encode_prompt(tok, template, row["query"], character="玲", add_special_tokens=True)
    room = len(prompt) + len(prompt) // 2  # prompt < room < 2 x prompt
    [ex] = encode_rows(
        [row],
        fmt="dialogue",
        tokenizer=tok,
        template=template,
        system=None,
        add_special_tokens=True,
        max_length=room + 10,
    )
    assert ex.input_ids[: len(prompt)] == prompt


def test_context_lines_become_history_pairs() -> None:
    ctx = ["主人公「やあ」", "玲「何。」", "楓「おはよ」", "主人公「元気？」", "玲「別に。」"]
    assert context_history(ctx, "玲") == [("やあ", "何。"), ("元気？", "別に。")]
