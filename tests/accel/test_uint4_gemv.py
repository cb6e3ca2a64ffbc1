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
    assert uint4_kernel() == "gemlite"
    assert uint4_kernel("serifu") == "serifu"
    with pytest.raises(SerifuError, match="gemlite, serifu"):
        uint4_kernel("marlin")


def test_the_environment_chooses_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIFU_UINT4_KERNEL", "serifu")
    assert uint4_kernel() == "serifu"
    monkeypatch.setenv("SERIFU_UINT4_KERNEL", "cutlass")
    with pytest.raises(SerifuError, match="cutlass"):
        uint4_kernel()
