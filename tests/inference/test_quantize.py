"""Reply weights: the LoRA merged, then 4-bit (bitsandbytes NF4 on the CPU; torchao int4 needs
CUDA), on tiny models built from config."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.errors import SerifuError
from serifu.inference.quantize import prepare_reply_weights, weight_bytes


def _tiny(with_lora: bool) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=300,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    if not with_lora:
        return model
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, p in peft.named_parameters():  # a trained adapter: B is not zero
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    return peft.eval()


def _ids() -> torch.Tensor:
    return torch.randint(3, 300, (1, 24), generator=torch.Generator().manual_seed(4))


def test_merged_adapter_gives_the_adapter_models_logits() -> None:
    model = _tiny(with_lora=True)
    with torch.no_grad():
        ref = model(input_ids=_ids()).logits
        merged = prepare_reply_weights(model, "bf16")
        assert not hasattr(merged, "peft_config")
        got = merged(input_ids=_ids()).logits
    assert torch.allclose(got, ref, atol=1e-4)


def test_nf4_reply_weights_load_and_decode_sanely() -> None:
    from serifu.accel.decode import StaticDecoder

    full = _tiny(with_lora=True)
    with torch.no_grad():
        ref_logits = full(input_ids=_ids()).logits[0, -1]
    before = weight_bytes(full.get_base_model())
    model = prepare_reply_weights(full, "nf4")
    assert type(model.model.layers[0].mlp.up_proj.weight).__name__ == "Params4bit"
    assert model.lm_head.weight.dtype == torch.float32  # the head stays full precision
    after = weight_bytes(model)
    # the linear layers shrink to ~1/8 (fp32 -> 4 bit); embeddings and head stay
    assert after < 0.6 * before
    with torch.no_grad():
        logits = model(input_ids=_ids()).logits[0, -1]
    cos = torch.nn.functional.cosine_similarity(logits, ref_logits, dim=0)
    assert float(cos) > 0.95  # the same model, 4-bit noise only
    ref = model.generate(
        input_ids=_ids(), max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0
    )[:, 24:]
    decoder = StaticDecoder(model, max_len=40, batch_size=1, graph=False)
    got = torch.cat(list(decoder.greedy(_ids(), max_new_tokens=8)), 1)
    assert torch.equal(got, ref)  # the fast path on 4-bit weights = generate on them


def test_int4_needs_cuda_and_bad_names_are_refused() -> None:
    with pytest.raises(SerifuError, match="need a CUDA GPU"):
        prepare_reply_weights(_tiny(with_lora=False), "int4")
    with pytest.raises(SerifuError, match="weights must be one of"):
        prepare_reply_weights(_tiny(with_lora=False), "int3")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torchao int4 has no CPU kernel (0.18)")
def test_int4_on_cuda_decodes_like_generate() -> None:  # pragma: no cover - GPU only
    from serifu.accel.decode import StaticDecoder

    model = _tiny(with_lora=True).to("cuda", torch.bfloat16)
    model = prepare_reply_weights(model, "int4")
    ids = _ids().cuda()
    ref = model.generate(
        input_ids=ids, max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0
    )[:, 24:]
    decoder = StaticDecoder(model, max_len=40, batch_size=1)
    assert torch.equal(torch.cat(list(decoder.greedy(ids, max_new_tokens=8)), 1), ref)


def test_load_chatbot_with_nf4_reply_weights_replies() -> None:
    from serifu.inference import load_chatbot

    bot = load_chatbot(
        model="tiny-llama", character="rei", quantize=False, device="cpu", weights="nf4", best_of=1
    )
    assert getattr(bot.model, "serifu_weights", None) == "nf4"
    layer = bot.model.model.layers[0].self_attn.q_proj
    assert type(layer.weight).__name__ == "Params4bit"
    bot.generation = {"do_sample": False}
    text = bot.reply("こんにちは", max_new_tokens=6, seed=0)
    assert isinstance(text.text if hasattr(text, "text") else text, str)
    with pytest.raises(SerifuError, match="leave quantize off"):
        load_chatbot(model="tiny-llama", quantize=True, device="cpu", weights="nf4")
