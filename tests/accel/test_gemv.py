"""Batch-1 linear layers as Serifu's Triton GEMV (serifu.accel.gemv): which layers switch, and
that everything the kernel does not serve keeps ``nn.Linear``'s result. The kernel itself runs
on CUDA only (bench/gpu/decode_levers.py, variant ``gemv``, compares its replies)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel.gemv import (
    RMS,
    FoldedIn,
    GemvLinear,
    drop_gemv,
    folded_in,
    folded_sums,
    gemv,
    use_gemv,
)
from tests.accel.test_accel import NAMES, _models
from tests.accel.test_int8_table import _gemma


def _gemma_bf16() -> torch.nn.Module:
    """The int8 table tests' tiny Gemma 3 model, in bf16 (the dtype the GEMV serves)."""
    return _gemma().to(torch.bfloat16)


def test_half_precision_linears_switch_but_not_the_head() -> None:
    model = _gemma_bf16()
    plain = [m for m in model.modules() if type(m) is torch.nn.Linear]
    head = model.get_output_embeddings()
    n = use_gemv(model)
    assert n == len(plain) - 1  # every layer's q, k, v, o, gate, up, down; not lm_head
    assert use_gemv(model, fold=True) == n  # a second decoder's call: the same layers, folded
    assert folded_in(model) == 2 * model.config.num_hidden_layers
    assert type(head) is torch.nn.Linear
    assert all(type(m) is GemvLinear for m in plain if m is not head)
    assert drop_gemv(model) == n
    assert not any(type(m) is GemvLinear for m in model.modules())


def test_float32_and_quantised_layers_stay() -> None:
    layer = torch.nn.Linear(8, 4)
    holder = torch.nn.Sequential(layer)
    assert use_gemv(holder) == 0 and type(layer) is torch.nn.Linear

    class Packed(torch.Tensor):  # stands for a quantised weight (torchao's tensor subclasses)
        pass

    half = torch.nn.Linear(8, 4, dtype=torch.bfloat16)
    half.weight = torch.nn.Parameter(half.weight.detach().as_subclass(Packed), requires_grad=False)
    assert use_gemv(torch.nn.Sequential(half)) == 0


def test_reply_weights_are_prepared_from_plain_layers() -> None:
    """A model a decoder switched to GEMV layers is quantised as nn.Linear layers."""
    from serifu.inference.quantize import prepare_reply_weights

    model = _gemma_bf16()
    assert use_gemv(model) > 0
    prepare_reply_weights(model, "bf16")
    assert not any(type(m) is GemvLinear for m in model.modules())


def test_the_switched_model_computes_what_it_did() -> None:
    """Off CUDA (and for prompts, and under autograd) the layers are nn.Linear's forward."""
    model = _gemma_bf16()
    ids = torch.randint(3, 300, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        use_gemv(model)
        got = model(input_ids=ids).logits
    assert torch.equal(got, ref)


def test_the_op_is_a_linear_layer_off_cuda() -> None:
    g = torch.Generator().manual_seed(2)
    x, w, b = (
        torch.randn(1, 1, 16, generator=g),
        torch.randn(5, 16, generator=g),
        torch.randn(5, generator=g),
    )
    assert torch.equal(gemv(x, w, b), torch.nn.functional.linear(x, w, b))
    assert gemv(x, w, None).shape == (1, 1, 5)


def test_a_failing_kernel_keeps_cublas_with_a_notice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The start-up check runs the op once per device; where it fails (a GPU or Triton release
    the kernel does not run on) the layers stay nn.Linear and one line says why."""
    from serifu.accel import gemv as gemv_module

    assert gemv_module.kernel_error("cpu") is None  # the op ran and matched F.linear

    def broken(*_args: object, **_kw: object) -> torch.Tensor:
        raise RuntimeError("no kernel image for this GPU")

    gemv_module.kernel_error.cache_clear()
    monkeypatch.setattr(gemv_module, "gemv", broken)
    try:
        model = _gemma_bf16()
        assert use_gemv(model) == 0
        assert not any(type(m) is GemvLinear for m in model.modules())
        assert "no kernel image for this GPU" in capsys.readouterr().err
    finally:
        gemv_module.kernel_error.cache_clear()


# norms and activations folded per decoder layer: GPT-NeoX 2 norms + GELU, GPT-J 1 norm +
# GELU (tanh), Llama and Gemma 3 2 norms each (their gated MLPs keep the activation)
FOLDED_PER_LAYER = {"neox": 3, "gptj": 2, "llama": 2, "gemma3": 2}


def _half_models() -> dict[str, Any]:
    """The four tiny architectures in bf16, their norms' weights and biases random (so a
    norm applied wrongly, or skipped, shows in the logits)."""
    built = _models()
    g = torch.Generator().manual_seed(5)
    for model in built.values():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.data += 0.3 * torch.randn(p.shape, generator=g)
        model.to(torch.bfloat16).eval()
    return built


@pytest.fixture(scope="module")
def half_models() -> dict[str, Any]:
    return _half_models()


@pytest.mark.parametrize("name", NAMES)
def test_folding_keeps_each_architectures_logits(half_models: dict[str, Any], name: str) -> None:
    """Folded norms pass their input through: the model computes what it did only if the GEMV
    layers in NORM_READERS are really the norm's only readers (else some module now reads an
    unnormalised input and the logits move)."""
    model = half_models[name]
    ids = torch.randint(3, 300, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        try:
            use_gemv(model, fold=True)
            layers = model.config.num_hidden_layers
            assert folded_in(model) == FOLDED_PER_LAYER[name] * layers
            got = model(input_ids=ids).logits
        finally:
            drop_gemv(model)
        assert not any(isinstance(m, (FoldedIn, GemvLinear)) for m in model.modules())
        back = model(input_ids=ids).logits
    assert torch.equal(got, ref)
    assert torch.equal(back, ref)


@pytest.mark.parametrize("name", NAMES)
def test_the_kernels_formula_is_each_modules(half_models: dict[str, Any], name: str) -> None:
    """What the kernel computes for a folded layer (its PyTorch twin, ``gemv`` off CUDA, which
    the kernel was checked against) equals the norm, linear layer and activation modules run
    in turn, for each architecture's norm and activation."""
    model = half_models[name]
    x = torch.randn(1, 1, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    x = (4 * x + 1).to(torch.bfloat16)
    try:
        use_gemv(model, fold=True)
        folded = [m for m in model.modules() if type(m) is GemvLinear and m._norm]
        assert folded
        for m in folded:
            with torch.no_grad():
                modules = m(x)  # off CUDA: the norm's, nn.Linear's, the activation's forwards
                kernel = gemv(
                    x, m.weight, m.bias, m._norm, m._norm_weight, m._norm_sums, m._eps, m._act
                )
            torch.testing.assert_close(kernel, modules, atol=2e-2, rtol=2e-2)
    finally:
        drop_gemv(model)


def test_a_norm_read_by_a_lora_layer_stays() -> None:
    """A norm is folded only when every reader is a plain GEMV layer: LoRA's extra path reads
    the normalised input too."""
    from peft import LoraConfig, get_peft_model

    model = _models()["neox"].to(torch.bfloat16)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["query_key_value"]))
    use_gemv(lora, fold=True)
    layer = lora.base_model.model.gpt_neox.layers[0]
    assert type(layer.input_layernorm) is torch.nn.LayerNorm  # read by a LoRA layer
    assert isinstance(layer.post_attention_layernorm, FoldedIn)
    assert isinstance(layer.mlp.act, FoldedIn)


def test_folded_sums_keep_no_autograd_graph() -> None:
    """A model's weights require grad as loaded: the folded norm's sums must not keep a graph
    (with it, each folded layer held a float32 copy of its weight; session 29 found line-3.6b's
    folded decoder at twice the unfolded one's peak memory, 14.5 against 7.1 GiB)."""
    weight = torch.nn.Parameter(torch.randn(8, 16, dtype=torch.bfloat16))
    norm_weight = torch.nn.Parameter(torch.randn(16))
    sums = folded_sums(weight, RMS, norm_weight, None)
    assert not sums.requires_grad and sums.grad_fn is None
    torch.testing.assert_close(sums[0], weight.detach().float() @ norm_weight.detach())
