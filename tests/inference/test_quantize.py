"""Reply weights: the LoRA merged, then 4-bit (bitsandbytes NF4 on the CPU; torchao int4 needs
CUDA), on tiny models built from config."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.errors import SerifuError
from serifu.inference.quantize import prepare_reply_weights, weight_bytes


def _tiny(with_lora: bool, use_dora: bool = False) -> Any:
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
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=use_dora)
    peft = get_peft_model(model, lora)
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


def test_uint4_codes_round_trip_within_half_a_step() -> None:
    from serifu.inference.quantize import uint4_dequantize, uint4_quantize

    w = torch.randn(24, 128, generator=torch.Generator().manual_seed(1))
    w[3, :64] = 0.25  # a constant group: scale clamps, the value survives
    codes, scales, zeros = uint4_quantize(w, 64)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 15
    assert scales.shape == zeros.shape == (24, 2)
    err = (uint4_dequantize(codes, scales, zeros) - w).abs()
    step = scales.repeat_interleave(64, dim=1)
    assert bool((err <= step / 2 + 1e-6).all())
    assert float(err[3, :64].max()) < 1e-5
    with pytest.raises(SerifuError, match="divisible by 64"):
        uint4_quantize(torch.zeros(4, 96), 64)


def test_uint4_keeps_the_lora_unmerged_and_rounds_only_the_base() -> None:
    """On the CPU uint4 rounds the base's linear weights (an untied head too) to the 4-bit grid
    (simulated), leaves the LoRA layers in full precision, and the model still agrees with the
    full-precision adapter model."""
    from serifu.inference.quantize import uint4_dequantize, uint4_quantize

    model = _tiny(with_lora=True)
    lora_b = model.base_model.model.model.layers[0].self_attn.q_proj.lora_B["default"]
    b_before = lora_b.weight.detach().clone()
    head_before = model.get_base_model().lm_head.weight.detach().clone()
    up_before = model.get_base_model().model.layers[0].mlp.up_proj.weight.detach().clone()
    with torch.no_grad():
        ref = model(input_ids=_ids()).logits[0, -1]
        out = prepare_reply_weights(model, "uint4")
        got = out(input_ids=_ids()).logits[0, -1]
    assert hasattr(out, "peft_config")  # not merged
    assert torch.equal(lora_b.weight, b_before)
    base = out.get_base_model()
    assert torch.allclose(base.lm_head.weight, uint4_dequantize(*uint4_quantize(head_before)))
    up = base.model.layers[0].mlp.up_proj.weight
    assert torch.allclose(up, uint4_dequantize(*uint4_quantize(up_before)), atol=1e-6)
    assert not torch.equal(up, up_before)
    q_base = base.model.layers[0].self_attn.q_proj.base_layer.weight
    assert len(torch.unique(q_base[0, :64])) <= 16  # on the grid
    assert float(torch.nn.functional.cosine_similarity(got, ref, dim=0)) > 0.95
    with pytest.raises(SerifuError, match="merged first"):
        prepare_reply_weights(_tiny(with_lora=True), "nf4", merge=False)


def test_load_chatbot_with_uint4_keeps_the_adapter_unmerged(tmp_path: Any) -> None:
    """``weights="uint4"`` by default rounds the base under the unmerged adapter (the layout
    that keeps a QLoRA adapter's quality; simulated on the CPU); ``merge=True`` folds the
    adapter in first."""
    from peft import LoraConfig, get_peft_model

    from serifu.inference import load_chatbot
    from serifu.modeling import load_model, resolve_base

    base = resolve_base("tiny-gemma")
    torch.manual_seed(0)
    config = LoraConfig(r=2, target_modules=list(base.lora_targets), init_lora_weights=False)
    get_peft_model(load_model(base, quantize=False, device="cpu"), config).save_pretrained(
        str(tmp_path / "a")
    )
    for merge, unmerged in ((None, True), (True, False)):
        bot = load_chatbot(
            model="tiny-gemma",
            adapter=tmp_path / "a",
            character="akane",
            device="cpu",
            weights="uint4",
            merge=merge,
            best_of=1,
        )
        assert getattr(bot.model, "serifu_weights", None) == "uint4-simulated"
        assert hasattr(bot.model, "peft_config") is unmerged
        bot.generation = {"do_sample": False}
        assert isinstance(bot.reply("こんにちは", max_new_tokens=6, seed=0), str)


def test_decode_lora_gives_pefts_outputs_and_still_disables() -> None:
    """The decode-friendly LoRA forward (reductions for few rows, PEFT's matmuls for many)
    gives the PEFT model's logits for a one-token step and a prompt pass, and
    ``disable_adapter()`` still gives the base's."""
    from serifu.accel.lora_decode import DECODE_ROWS, fuse_lora_for_decode_

    model = _tiny(with_lora=True)
    ids = _ids()
    with torch.no_grad():
        ref_prompt = model(input_ids=ids).logits
        ref_step = model(input_ids=ids[:, :1]).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
        assert fuse_lora_for_decode_(model) == 4  # q and v of two layers
        assert ids.shape[1] > DECODE_ROWS
        assert torch.allclose(model(input_ids=ids).logits, ref_prompt, atol=1e-5)
        step = model(input_ids=ids[:, :1]).logits
        assert torch.allclose(step, ref_step, atol=1e-5)
        with model.disable_adapter():
            assert torch.allclose(model(input_ids=ids).logits, base, atol=1e-6)
    assert not torch.allclose(base, ref_prompt, atol=1e-3)  # the adapter does something


def test_uint4_reply_weights_use_the_decode_lora_unless_asked_not_to() -> None:
    from serifu.accel.lora_decode import _decode_class

    fused = prepare_reply_weights(_tiny(with_lora=True), "uint4")
    plain = prepare_reply_weights(_tiny(with_lora=True), "uint4", fuse_lora=False)
    q = "base_model.model.model.layers.0.self_attn.q_proj"
    assert type(fused.get_submodule(q)) is _decode_class()
    assert type(plain.get_submodule(q)) is not _decode_class()
    with torch.no_grad():
        step = _ids()[:, :1]
        assert torch.allclose(fused(input_ids=step).logits, plain(input_ids=step).logits, atol=1e-5)


def test_decode_lora_leaves_dora_to_peft() -> None:
    """A DoRA adapter (not a plain low-rank delta) keeps PEFT's forward: same logits."""
    from serifu.accel.lora_decode import fuse_lora_for_decode_

    model = _tiny(with_lora=True, use_dora=True)
    step = _ids()[:, :1]
    with torch.no_grad():
        ref = model(input_ids=step).logits
        assert fuse_lora_for_decode_(model) == 4
        assert torch.allclose(model(input_ids=step).logits, ref, atol=1e-6)
