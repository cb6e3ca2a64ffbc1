"""bench/gpu/uint4_torch.py: the uint4 codes as PyTorch layers (a measured lever) compute
the product of the weight their codes stand for, decode rows and prompt passes alike."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.uint4_torch import pack_uint4, uint4_layer, unpack_uint4
from serifu.inference.quantize import uint4_dequantize, uint4_quantize


def test_uint4_torch_layer_is_the_dequantised_product() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(192, 40)
    q = uint4_layer(lin, 64)
    codes, scales, zeros = uint4_quantize(lin.weight, 64)
    assert q.packed.dtype == torch.uint8 and q.packed.shape == (40, 96)
    assert torch.equal(unpack_uint4(pack_uint4(codes)), codes)
    w = q.dequantized()
    # the grid of uint4_quantize, with the scales and zeros stored in bf16 as GemLite's
    assert float((w - uint4_dequantize(codes, scales, zeros)).abs().max()) < 0.08 * float(
        scales.max()
    )
    with torch.no_grad():
        for rows in (1, 3, 40):  # decode rows: multiply-and-sum; 40: dequantise + matmul
            x = torch.randn(rows, 192)
            ref = torch.nn.functional.linear(x, w, lin.bias)
            assert torch.allclose(q(x), ref, atol=1e-5), rows
