"""A Llama layer's residual adds inside its o_proj and down_proj GEMVs, as their bias
(serifu.accel.residual_fold): which layers fold, that a step computes what it did, and that
every other input runs the layer's own forward. The one-row path runs on the CPU through the
op's PyTorch reference (``gemv._CPU_KERNEL``); the Triton kernel adds a bias it already had.
The compiled step with every lever, this one included: tests/accel/test_gemv_fuse.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel import gemv as gemv_module
from serifu.accel.gemv import GemvLinear, drop_gemv, use_gemv
from serifu.accel.residual_fold import ResidualLayer, residual_layers
from tests.accel.test_accel import NAMES
from tests.accel.test_gemv import _half_models
from tests.accel.test_gemv_fuse import _ids, _step_logits


@pytest.fixture
def kernel_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemv_module, "_CPU_KERNEL", True)


def _slots_empty(model: Any) -> bool:
    slots = [m._residual for m in model.modules() if type(m) is GemvLinear]
    return all(s is None or s.value is None for s in slots)


@pytest.mark.parametrize("name", NAMES)
def test_only_llama_layers_fold_their_residuals(name: str) -> None:
    """Gemma 3 normalises the attention output before its add, GPT-J and GPT-NeoX add three
    terms into layers with a bias: only Llama's layers fold; a second call keeps them."""
    model = _half_models()[name]
    use_gemv(model, fold=True, fuse=True, residual=True)
    want = model.config.num_hidden_layers if name == "llama" else 0
    assert residual_layers(model) == want
    use_gemv(model, fold=True, fuse=True, residual=True)
    assert residual_layers(model) == want


@pytest.mark.parametrize(
    "levers",
    [{}, {"fold": True, "fuse": True, "glu": True}, {"fold": True, "fuse": True, "glu": "down"}],
)
def test_a_step_adds_each_residual_inside_its_gemv(
    kernel_on_cpu: None, levers: dict[str, bool | str]
) -> None:
    """The step's logits and pick are the layer's own (one rounding where it had two); each
    layer's two GEMVs took a residual as their bias, and none is left pending."""
    model = _half_models()["llama"]
    ids = _ids()
    use_gemv(model, **levers)
    ref = _step_logits(model, ids)
    use_gemv(model, **levers, residual=True)
    hidden = model.config.hidden_size
    biased: list[int] = []
    real = gemv_module.gemv

    def counted(x: torch.Tensor, weight: torch.Tensor, bias: Any, *args: Any) -> torch.Tensor:
        if bias is not None and bias.numel() == hidden:
            biased.append(weight.shape[0])
        return real(x, weight, bias, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gemv_module, "gemv", counted)
        got = _step_logits(model, ids)
    torch.testing.assert_close(got, ref, atol=2e-2, rtol=2e-2)
    assert torch.equal(got.argmax(-1), ref.argmax(-1))
    assert len(biased) == 2 * model.config.num_hidden_layers
    assert _slots_empty(model)


def test_prompts_and_autograd_run_the_layers_own_forward(kernel_on_cpu: None) -> None:
    """Inputs of several rows, and any with autograd on, never touch the slots: the prompt's
    logits are bit for bit the unfolded model's."""
    model = _half_models()["llama"]
    ids = _ids(7)
    use_gemv(model, fold=True)
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    use_gemv(model, fold=True, residual=True)
    with torch.no_grad():
        got = model(input_ids=ids).logits
    assert torch.equal(got, ref)
    one = model(input_ids=ids[:, :1]).logits  # autograd on: the layer's own forward
    assert one.requires_grad and _slots_empty(model)


def test_drop_gemv_gives_the_layers_back_their_classes() -> None:
    model = _half_models()["llama"]
    use_gemv(model, fold=True, fuse=True, residual=True)
    drop_gemv(model)
    assert residual_layers(model) == 0
    assert not any(isinstance(m, ResidualLayer) for m in model.modules())
    assert all("_residual" not in m.__dict__ for m in model.modules())
    assert type(model.model.layers[0]).__name__ == "LlamaDecoderLayer"
