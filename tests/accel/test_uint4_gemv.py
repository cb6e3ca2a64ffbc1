"""Serifu's uint4 GEMV layers (serifu.accel.uint4_gemv): the packed codes stand for the uint4
grid's weights, and a model on them computes what the grid's CPU simulation computes. The
Triton kernel itself runs on CUDA only (bench/gpu/generate_speed.py, kinds uint4s, uint4s-lora)."""

from __future__ import annotations

import pytest
import torch

from serifu.accel.uint4_gemv import Uint4Linear, pack_uint4, uint4_gemv, unpack_uint4
from serifu.errors import SerifuError
from serifu.inference.quantize import (
    _base_linears,
    round_uint4_,
    uint4_dequantize,
    uint4_kernel,
    uint4_quantize,
)
from tests.accel.test_accel import _models


def test_packing_keeps_the_grid() -> None:
    """Each code lands in its nibble: the unpacked weight is the grid's dequantised weight up
    to float16 scales and shifts (4x closer than bf16 ones); rows pad to a multiple of 8."""
    w = torch.randn(21, 256, generator=torch.Generator().manual_seed(0))
    codes, scales, zeros = uint4_quantize(w)
    packed, scale, shift = pack_uint4(codes, scales, zeros)
    assert packed.dtype == torch.int32 and packed.shape == (3, 256)
    assert scale.shape == shift.shape == (3, 4, 8) and scale.dtype == torch.float16
    grid = uint4_dequantize(codes, scales, zeros)
    torch.testing.assert_close(unpack_uint4(packed, scale, shift, 21), grid, atol=4e-3, rtol=0)
    swapped = packed.flip(-1)  # a wrong layout shows
    assert (unpack_uint4(swapped, scale, shift, 21) - grid).abs().max() > 0.1
    # word (w, k): row 8 w + i's code at input k in nibble i (the sign bit holds nibble 7's top)
    word = int(packed[1, 70]) & 0xFFFFFFFF
    assert [(word >> (4 * i)) & 15 for i in range(8)] == codes[8:16, 70].tolist()
    assert float(scale[2, 1, 3]) == pytest.approx(float(scales[19, 1]), rel=1e-3)
    assert ((packed[2] >> 20) & 0xFFF).eq(0).all()  # padding rows 21-23 (nibbles 5-7): code 0
    assert (unpack_uint4(packed, scale, shift)[21:] == 0).all()


def test_the_op_off_cuda_is_the_dequantised_product() -> None:
    g = torch.Generator().manual_seed(1)
    layer = torch.nn.Linear(128, 9, dtype=torch.bfloat16)
    q = Uint4Linear.from_linear(layer)
    x = torch.randn(1, 1, 128, generator=g).to(torch.bfloat16)
    w = unpack_uint4(q.packed, q.scale, q.shift, 9)
    assert q.bias is not None and w.shape == (9, 128) and q.out_features == 9
    ref = torch.nn.functional.linear(x.float(), w, q.bias.float())
    torch.testing.assert_close(uint4_gemv(x, q.packed, q.scale, q.shift, q.bias, 9).float(), ref,
                               atol=2e-2, rtol=1e-2)  # fmt: skip
    assert uint4_gemv(x, q.packed, q.scale, q.shift, None, 9).shape == (1, 1, 9)
    assert torch.equal(q.dequantised(torch.float32), w)  # prompts' weight (a kernel on CUDA)
    assert q(x.expand(3, 2, 128)).shape == (3, 2, 9)  # a prompt


def test_a_model_on_uint4_layers_computes_the_grids_simulation() -> None:
    """Every base linear layer of a tiny GPT-NeoX as Uint4Linear gives the logits of the same
    model with its weights rounded to the grid in place (the CPU's uint4 replies), prompts
    and one-row steps alike; the layers hold ~28 % of the bf16 bytes."""
    model = _models()["neox"].to(torch.bfloat16).eval()
    simulated = _models()["neox"].to(torch.bfloat16).eval()
    round_uint4_(simulated, table="bf16")
    plain = sum(layer.weight.numel() * 2 for _p, _n, layer in _base_linears(model))
    for parent, name, layer in _base_linears(model):
        setattr(parent, name, Uint4Linear.from_linear(layer))
    packed = sum(
        sum(b.numel() * b.element_size() for n, b in m.named_buffers() if n != "bias")
        for m in model.modules()
        if isinstance(m, Uint4Linear)
    )
    assert 0.27 < packed / plain < 0.29
    ids = torch.randint(3, 300, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, ref = model(input_ids=ids).logits, simulated(input_ids=ids).logits
    torch.testing.assert_close(got.float(), ref.float(), atol=5e-2, rtol=5e-2)
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9


def test_the_kernel_choice_is_checked() -> None:
    assert uint4_kernel() == "serifu"  # the default since session 29
    assert uint4_kernel("gemlite") == "gemlite"
    assert uint4_kernel("serifu") == "serifu"
    with pytest.raises(SerifuError, match="gemlite, serifu"):
        uint4_kernel("marlin")


def test_the_environment_chooses_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIFU_UINT4_KERNEL", "gemlite")
    assert uint4_kernel() == "gemlite"
    monkeypatch.setenv("SERIFU_UINT4_KERNEL", "cutlass")
    with pytest.raises(SerifuError, match="cutlass"):
        uint4_kernel()


def _uint4_model(name: str, lora: list[str] | None = None) -> torch.nn.Module:
    """A tiny architecture in bf16, its norms' weights and biases random (a norm applied
    wrongly or skipped shows), with a LoRA adapter on ``lora``, every base linear layer then
    on Uint4Linear (as the product quantises an adapted model)."""
    model = _models()[name]
    g = torch.Generator().manual_seed(5)
    for pname, p in model.named_parameters():
        if "norm" in pname or "ln_" in pname:
            p.data += 0.3 * torch.randn(p.shape, generator=g)
    model.to(torch.bfloat16).eval()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=lora))
    for parent, attr, layer in _base_linears(model):
        setattr(parent, attr, Uint4Linear.from_linear(layer))
    return model


@pytest.mark.parametrize("name", ["neox", "llama", "gemma3"])
def test_norms_and_activations_fold_into_uint4_layers(name: str) -> None:
    """The decoder's folding (use_gemv(fold=True)) takes the uint4 layers as readers too: the
    model computes what it did (prompts run the norm's own forward once for all readers), the
    kernel's formula (the op off CUDA) equals the modules run in turn, and drop_gemv unfolds."""
    from serifu.accel.gemv import FoldedIn, drop_gemv, folded_in, use_gemv

    model = _uint4_model(name)
    ids = torch.randint(3, 300, (1, 12), generator=torch.Generator().manual_seed(1))
    x = torch.randn(1, 1, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    x = (4 * x + 1).to(torch.bfloat16)
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        try:
            use_gemv(model, fold=True)
            per_layer = {"neox": 3, "llama": 2, "gemma3": 2}[name]  # GPT-NeoX: and its GELU
            assert folded_in(model) == per_layer * model.config.num_hidden_layers
            got = model(input_ids=ids).logits
            folded = [m for m in model.modules() if isinstance(m, Uint4Linear) and m._norm]
            assert folded
            for m in folded:
                modules = m(x)  # off CUDA: the norm's, the dequantised linear's, the act's
                kernel = uint4_gemv(x, m.packed, m.scale, m.shift, m.bias, m.out_features,
                                    *m.folded())  # fmt: skip
                torch.testing.assert_close(kernel, modules, atol=3e-2, rtol=2e-2)
        finally:
            drop_gemv(model)
        assert not any(isinstance(m, FoldedIn) for m in model.modules())
        assert not any(isinstance(m, Uint4Linear) and "_norm" in vars(m) for m in model.modules())
        back = model(input_ids=ids).logits
    assert torch.equal(got, ref) and torch.equal(back, ref)


def test_a_norm_read_by_a_lora_layer_stays_off_the_uint4_kernel() -> None:
    """line-3.6b's adapters sit on query_key_value: its input norm stays, the MLP's norm and
    GELU fold into the uint4 layer (the LoRA layer's extra path reads the normalised input)."""
    from serifu.accel.gemv import FoldedIn, use_gemv

    lora = _uint4_model("neox", ["query_key_value"])
    assert isinstance(
        lora.base_model.model.gpt_neox.layers[0].attention.query_key_value.base_layer, Uint4Linear
    )
    use_gemv(lora, fold=True)
    layer = lora.base_model.model.gpt_neox.layers[0]
    assert type(layer.input_layernorm) is torch.nn.LayerNorm
    assert isinstance(layer.post_attention_layernorm, FoldedIn)
    assert isinstance(layer.mlp.act, FoldedIn)
    assert layer.mlp.dense_h_to_4h._norm and layer.mlp.dense_h_to_4h._act
