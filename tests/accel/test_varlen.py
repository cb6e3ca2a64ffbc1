"""Variable-length attention over packed rows: same loss and gradients as SDPA's mask.

On the CPU the varlen kernel cannot run, so ``serifu_varlen`` turns the boundaries into
its own block-diagonal mask (no mask from transformers); that path, the boundary
bookkeeping and the trainer's switch are what these tests pin. The GPU kernel is
compared against SDPA in ``bench/gpu/train_speed.py`` (``notes`` of each record).
"""

from __future__ import annotations

import pytest
import torch

from serifu.accel.varlen import NAME, block_mask, boundaries
from serifu.config.train import TrainConfig
from serifu.modeling import load_model, resolve_base
from serifu.training.batches import pack_batch
from serifu.training.examples import IGNORE, Example
from serifu.training.loss import loss_sum
from serifu.training.trainer import add_lora, row_tokens, use_fast_attention


def _examples(lengths: list[int]) -> list[Example]:
    g = torch.Generator().manual_seed(0)
    out = []
    for n in lengths:
        ids = torch.randint(6, 1900, (n,), generator=g).tolist()
        out.append(Example(ids, [IGNORE] * 2 + ids[2:]))
    return out


def test_boundaries_follow_examples_rows_and_tails() -> None:
    batch = pack_batch(_examples([7, 12, 5]), row_tokens=19)  # rows [7, 12] and [5 + tail 14]
    assert batch["cu_seq_lens_q"].tolist() == [0, 7, 19, 24, 38]
    assert batch["max_length_q"] == 14
    assert batch["cu_seq_lens_q"].dtype == torch.int32
    # a row whose positions do not restart still begins a new example
    cu, longest = boundaries(torch.arange(8).view(2, 4))
    assert cu.tolist() == [0, 4, 8] and longest == 4


def test_block_mask_is_causal_per_example_and_windowed() -> None:
    cu = torch.tensor([0, 3, 5, 6], dtype=torch.int32)
    mask = block_mask(cu, width=6)[0, 0]
    expect = torch.zeros(6, 6, dtype=torch.bool)
    for a, b in [(0, 3), (3, 5), (5, 6)]:
        expect[a:b, a:b] = torch.ones(b - a, b - a).tril().bool()
    assert torch.equal(mask, expect)
    windowed = block_mask(cu, width=6, sliding_window=2)[0, 0]
    assert windowed[2].tolist() == [False, True, True, False, False, False]


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-gemma", "tiny-gptj", "tiny-neox"])
def test_varlen_loss_and_gradients_equal_sdpa(model_id: str) -> None:
    """tiny-gemma: examples longer than its sliding window (16) exercise the window."""
    examples = _examples([23, 9, 30, 4])
    results = []
    for attention in ("sdpa", "varlen"):
        torch.manual_seed(0)  # the same LoRA initialisation
        model = load_model(resolve_base(model_id), quantize=False, device="cpu")
        config = TrainConfig(attention=attention, lora={"dropout": 0.0})
        peft_model = add_lora(model, config, resolve_base(model_id).lora_targets, False)
        assert use_fast_attention(peft_model, config, "cpu") == (attention == "varlen")
        batch = pack_batch(examples, row_tokens(peft_model, config))
        total, n = loss_sum(peft_model, batch)
        total.backward()
        grads = {k: p.grad for k, p in peft_model.named_parameters() if p.requires_grad}
        results.append((float(total), n, grads, batch["input_ids"].shape))
    (ref, n_ref, g_ref, shape_ref), (got, n_got, g_got, shape_got) = results
    assert shape_ref[0] == 1 and shape_got[0] == 1  # one row either way at these sizes
    assert n_got == n_ref and got == pytest.approx(ref, rel=1e-5)
    assert g_ref.keys() == g_got.keys() and g_ref
    for k in g_ref:
        assert torch.allclose(g_ref[k], g_got[k], atol=1e-6, rtol=1e-4), k


def test_rows_are_unbounded_only_under_varlen() -> None:
    model = load_model(resolve_base("tiny-llama"), quantize=False, device="cpu")
    config = TrainConfig(pack_row_tokens=64)
    assert row_tokens(model, config) == 64
    assert (
        use_fast_attention(model, config.model_copy(update={"attention": "sdpa"}), "cpu") is False
    )
    assert row_tokens(model, config) == 64
    assert use_fast_attention(model, config, "cpu")  # auto: on the CPU too (its mask path)
    assert model.config._attn_implementation == NAME
    assert row_tokens(model, config) is None


def test_a_failing_kernel_is_given_up_once_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a kernel error (e.g. a GPU without flash kernels) packed rows take the mask path."""
    import serifu.accel.varlen as varlen

    monkeypatch.setattr(varlen, "_FAILED", None)
    varlen._kernel.cache_clear()
    with pytest.warns(RuntimeWarning, match="unavailable"):
        varlen._give_up(RuntimeError("no kernel image for this GPU"))
    assert varlen._kernel() is None
    monkeypatch.setattr(varlen, "_FAILED", None)
    varlen._kernel.cache_clear()
