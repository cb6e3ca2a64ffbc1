"""One-query attention split over the keys (serifu.accel.split_kv).

On CUDA the Triton kernels run (bench/gpu/decode_levers.py compares their replies with
PyTorch's sdpa kernel); here the same split algorithm runs in PyTorch, against sdpa, and the
registered attention implementation drives the four tiny architectures' decode steps."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from serifu.accel import split_kv
from serifu.accel.decode import StaticDecoder
from serifu.accel.split_kv import (
    NAME,
    attention_forward,
    block_for,
    decode_attention,
    plan,
    split_attention_reference,
    use_split_kv,
)
from tests.accel.test_accel import NAMES, _models


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any, scale: float) -> Any:
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return out.transpose(1, 2)


def _qkv(b: int, h: int, hkv: int, keys: int, dim: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(b, n, length, dim, generator=g)
        for n, length in ((h, 1), (hkv, keys), (hkv, keys))
    ]


@pytest.mark.parametrize(
    ("rows_heads", "keys", "splits", "chunk"),
    [(32, 416, 7, 64), (32, 40, 1, 64), (264, 416, 1, 448), (1, 100, 2, 64), (8, 1, 1, 64)],
)
def test_plan_covers_the_keys_in_whole_blocks(
    rows_heads: int, keys: int, splits: int, chunk: int
) -> None:
    assert plan(rows_heads, keys) == (splits, chunk)
    assert chunk % 64 == 0 and (splits - 1) * chunk < keys <= splits * chunk


@pytest.mark.parametrize(
    ("dim", "width", "block", "warps"),
    [(96, 128, 64, 2), (128, 128, 64, 2), (256, 256, 32, 2), (80, 128, 64, 2), (8, 8, 64, 2)],
)
def test_programs_read_a_tile_of_8192_values_with_two_warps(
    dim: int, width: int, block: int, warps: int
) -> None:
    """Session 33's sweep: 64 keys of heads up to 128 wide, 32 of 256-wide ones, 2 warps each,
    was the fastest setting (or within 0.03 µs) for all four models' heads on an H100."""
    from serifu.accel.split_kv import padded_width, warps_for

    assert padded_width(dim) == width
    assert block_for(dim) == block
    assert warps_for(block, width) == warps
    assert warps_for(128, 256) == 8  # a larger tile gets more warps
    assert plan(4, 100, block_n=block_for(256)) == (4, 32)  # gemma's 4 heads: 4 chunks of 32


@pytest.mark.parametrize(
    ("b", "h", "hkv", "keys", "dim", "mask_kind"),
    [
        (1, 32, 32, 416, 24, "bool"),  # many splits (line-3.6b's plan at batch 1)
        (2, 4, 1, 100, 32, "bool"),  # grouped keys (gemma), rows with their own masks
        (1, 4, 2, 70, 16, "additive"),
        (1, 2, 2, 45, 8, "none"),
        (1, 4, 1, 100, 256, "bool"),  # 256-wide heads: chunks of 32 keys (block_for)
    ],
)
def test_the_split_algorithm_equals_sdpa(
    b: int, h: int, hkv: int, keys: int, dim: int, mask_kind: str
) -> None:
    q, k, v = _qkv(b, h, hkv, keys, dim)
    g = torch.Generator().manual_seed(1)
    mask: Any = None
    if mask_kind == "bool":
        mask = torch.rand(b, 1, 1, keys, generator=g) > 0.3
        mask[0, ..., :64] = False  # whole chunks masked: their partial softmax is empty
        mask[..., -1] = True
    elif mask_kind == "additive":
        mask = torch.where(torch.rand(b, 1, 1, keys, generator=g) > 0.3, 0.0, -math.inf)
        mask[..., 0] = 0.0
    scale = dim**-0.5
    ref = _sdpa(q, k, v, mask, scale)
    assert plan(b * h, keys, block_n=block_for(dim))[0] > 1 or keys <= 64
    got = split_attention_reference(q, k, v, mask, scale)
    assert got.shape == (b, 1, h, dim)
    torch.testing.assert_close(got, ref, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(decode_attention(q, k, v, mask, scale), got)  # the custom op


def test_a_wrong_mask_would_show() -> None:
    """The comparison above can fail: dropping the mask changes the result."""
    q, k, v = _qkv(1, 4, 4, 90, 16)
    mask = torch.arange(90).view(1, 1, 1, 90) < 50
    ref = _sdpa(q, k, v, mask, 0.25)
    assert not torch.allclose(split_attention_reference(q, k, v, None, 0.25), ref, atol=1e-3)


def test_prompt_passes_and_soft_caps_run_hf_sdpa() -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = torch.nn.Module()
    module.is_causal = True  # type: ignore[assignment]
    q = torch.randn(1, 4, 5, 16)  # five queries: a prompt
    k, v = torch.randn(1, 4, 5, 16), torch.randn(1, 4, 5, 16)
    ours, _ = attention_forward(module, q, k, v, None, scaling=0.25)
    ref, _ = sdpa_attention_forward(module, q, k, v, None, scaling=0.25)
    assert torch.equal(ours, ref)
    two = torch.randn(2, 4, 1, 8), torch.randn(2, 4, 90, 8), torch.randn(2, 4, 90, 8)
    assert torch.equal(  # batches of more than MAX_ROWS rows: sdpa
        attention_forward(module, *two, None, scaling=0.3)[0],
        sdpa_attention_forward(module, *two, None, scaling=0.3)[0],
    )
    wide = torch.randn(1, 264, 1, 8), torch.randn(1, 264, 64, 8), torch.randn(1, 264, 64, 8)
    assert plan(264, 64)[0] == 1  # rows x heads fill the GPU: sdpa's kernel, unchanged
    assert torch.equal(
        attention_forward(module, *wide, None, scaling=0.3)[0],
        sdpa_attention_forward(module, *wide, None, scaling=0.3)[0],
    )
    with pytest.raises(ValueError, match="softcap"):  # sdpa's own refusal, not a silent result
        attention_forward(module, q[:, :, :1], k, v, None, scaling=0.25, softcap=30.0)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _models()


@pytest.mark.parametrize("name", NAMES)
def test_decode_steps_on_the_split_attention_equal_sdpa(
    models: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each architecture's decode steps through the registered implementation (two rows, one
    left-padded: the mask reaches the split algorithm) give sdpa's logits and tokens."""
    monkeypatch.setattr(split_kv, "MAX_ROWS", 2)  # the product splits batch 1 only
    calls = []
    monkeypatch.setattr(split_kv, "split_attention_reference", _counted(calls))
    model = models[name].eval()
    if model.config._attn_implementation != "sdpa":
        model.set_attn_implementation("sdpa")
    torch.manual_seed(1)
    ids = torch.randint(3, 300, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, :6] = 0

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        decoder = StaticDecoder(model, max_len=100, batch_size=2, graph=False, split_kv=False)
        first = decoder.prefill(ids, mask)
        tokens = [first.argmax(-1)]
        logits = []
        for _ in range(8):
            step = decoder.step(tokens[-1])
            logits.append(step)
            tokens.append(step.argmax(-1))
        return torch.stack(tokens, 1), torch.stack(logits, 1)

    ref_tokens, ref_logits = run()
    try:
        assert use_split_kv(model)
        assert model.config._attn_implementation == NAME
        tokens, logits = run()
    finally:
        model.set_attn_implementation("sdpa")
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
    assert len(calls) >= 8  # every decode step's layers ran the split algorithm


def _counted(calls: list[int]) -> Any:
    def run(*args: Any) -> torch.Tensor:
        calls.append(1)
        return split_attention_reference(*args)

    return run


def test_only_sdpa_models_switch(models: dict[str, Any]) -> None:
    model = models["llama"]
    model.set_attn_implementation("eager")
    try:
        assert not use_split_kv(model)
        assert model.config._attn_implementation == "eager"
    finally:
        model.set_attn_implementation("sdpa")


def test_failing_kernels_keep_sdpa_with_a_notice(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert split_kv.kernel_error("cpu") is None  # ran and matched the algorithm

    def wrong(q: torch.Tensor, *_args: object) -> torch.Tensor:
        return torch.zeros(q.shape[0], 1, q.shape[1], q.shape[3], dtype=q.dtype)

    split_kv.kernel_error.cache_clear()
    monkeypatch.setattr(split_kv, "decode_attention", wrong)  # a kernel giving wrong results
    model = models["llama"]
    try:
        assert not use_split_kv(model)
        assert model.config._attn_implementation == "sdpa"
        assert "differs from PyTorch's" in capsys.readouterr().err
    finally:
        split_kv.kernel_error.cache_clear()
