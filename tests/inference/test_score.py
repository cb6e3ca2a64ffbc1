"""Chatbot.score (batched, output head at continuation positions only) == full-logit NLL."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.inference import load_chatbot

QUERIES = ["ありがとう", "職員室ってどこにあるのか教えてくれないか？", "やあ", "今日は何してたの？"]
REPLIES = ["別に。礼はいらない。", "ほんまに？", "めっちゃええやん！ 今日は部活やったで。", ""]


def full_logits_score(bot: Any, prompt: str, cont: str) -> tuple[float, int]:
    """The straightforward reference: one pair, logits over every position."""
    p_ids = bot.tokenizer(prompt, add_special_tokens=bot.add_special_tokens)["input_ids"]
    c_ids = bot.tokenizer(cont, add_special_tokens=False)["input_ids"]
    if not c_ids:
        return 0.0, 0
    ids = torch.tensor([p_ids + c_ids])
    with torch.inference_mode():
        logits = bot.model(input_ids=ids).logits[0, len(p_ids) - 1 : -1].float()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, len(p_ids) :], reduction="sum")
    return float(nll), len(c_ids)


def check_matches_reference(bot: Any) -> list[tuple[float, int]]:
    prompts = [bot.render_prompt(q) for q in QUERIES]
    conts = [r + bot.template.reply_end if r else r for r in REPLIES]
    got = bot.score(prompts, conts, batch_size=3)  # two batches, with right padding
    want = [full_logits_score(bot, p, c) for p, c in zip(prompts, conts, strict=True)]
    assert [n for _, n in got] == [n for _, n in want] and want[-1] == (0.0, 0)
    assert all(n > 0 for _, n in want[:-1])
    for (nll, _), (ref, _) in zip(got, want, strict=True):
        assert nll == pytest.approx(ref, abs=1e-4, rel=1e-5)
    return got


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-gemma", "tiny-neox"])
def test_score_equals_full_logits(model_id: str) -> None:
    bot = load_chatbot(model=model_id, character="akane", quantize=False, device="cpu")
    check_matches_reference(bot)


def test_score_applies_final_logit_softcapping() -> None:
    """Gemma 2 style soft-capping (Gemma 3 ships without it; the code path reads the config)."""
    bot = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    plain = check_matches_reference(bot)
    bot.model.config.final_logit_softcapping = 0.05  # tiny logits: a cap this low bends them all
    capped = check_matches_reference(bot)
    assert all(abs(a - b) > 1e-3 for (a, n), (b, _) in zip(plain, capped, strict=True) if n)


def test_score_with_lora_adapter_equals_full_logits() -> None:
    from peft import LoraConfig, get_peft_model

    bot = load_chatbot(model="tiny-gemma", character="akane", quantize=False, device="cpu")
    base = check_matches_reference(bot)
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    bot.model = get_peft_model(bot.model, config).eval()
    tuned = check_matches_reference(bot)
    assert any(abs(a - b) > 1e-3 for (a, _), (b, _) in zip(base, tuned, strict=True))
