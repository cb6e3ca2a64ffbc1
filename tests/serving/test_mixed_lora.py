"""Stacked mixed-adapter batches give PEFT's per-row adapter results (and not the base's)."""

from __future__ import annotations

import pytest
import torch

from .conftest import save_random_adapters


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    from peft import PeftModel

    from serifu.modeling import load_model, resolve_base

    base = resolve_base("tiny-gemma")
    root = tmp_path_factory.mktemp("mixed")
    save_random_adapters(root, ["a", "b", "c"], seed=0, alpha=4, alpha_step=3)
    lm = load_model(base, quantize=False, device="cpu")
    peft = PeftModel.from_pretrained(lm, str(root / "a"), adapter_name="a")
    for name in ("b", "c"):
        peft.load_adapter(str(root / name), adapter_name=name)
    return peft.eval()


def test_stacked_rows_match_peft_mixed_batch(model) -> None:
    from serifu.serving.engine import _adapters
    from serifu.serving.mixed_lora import MixedLora

    ids = torch.randint(5, 1500, (4, 9), generator=torch.Generator().manual_seed(0))
    names = ["b", None, "a", "c"]
    with torch.no_grad():
        with model._enable_peft_forward_hooks(adapter_names=[n or "__base__" for n in names]):
            expected = model(input_ids=ids).logits
        with _adapters(model, names):  # the server's path: the stacked adapters
            got = model(input_ids=ids).logits
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    mixed = MixedLora.for_model(model)
    assert mixed is not None and mixed.rank == 4 and mixed.names == ["a", "b", "c"]
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.equal(got[1], plain[1])  # the bare-base row
    assert not torch.allclose(got[0], plain[0], atol=1e-3)  # adapters change the others
    assert all(not m._forward_hooks for m, _, _ in mixed.layers)  # hooks removed after


def test_a_batch_of_another_size_is_an_error(model) -> None:
    from serifu.serving.engine import _adapters

    with torch.no_grad(), _adapters(model, ["a", "b"]), pytest.raises(RuntimeError, match="2 rows"):
        model(input_ids=torch.ones((3, 4), dtype=torch.long))
