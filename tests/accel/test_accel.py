"""GPU fast paths, run on the CPU: they must give exactly what the slow paths give."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel.decode import StaticDecoder
from serifu.accel.loss import (
    LinearHead,
    chunked_lm_loss,
    decoder_and_head,
    frozen_linear_head,
    linear_head_loss,
)


def _models() -> dict[str, Any]:
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GPTJConfig,
        GPTJForCausalLM,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(0)
    small = {"vocab_size": 300, "num_attention_heads": 4}
    return {
        "llama": LlamaForCausalLM(
            LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, **small)
        ),
        "gemma3": Gemma3ForCausalLM(
            Gemma3TextConfig(
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=3,
                num_key_value_heads=1,
                head_dim=16,
                sliding_window=64,
                final_logit_softcapping=30.0,
                **small,
            )
        ),
        "neox": GPTNeoXForCausalLM(
            GPTNeoXConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, **small)
        ),
        "gptj": GPTJForCausalLM(
            GPTJConfig(
                n_embd=64, n_layer=2, n_head=4, rotary_dim=8, n_positions=256, vocab_size=300
            )
        ),
    }


NAMES = ("gemma3", "gptj", "llama", "neox")


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    """The four tiny architectures, built once per module (not at import: collection stays cheap)."""
    built = _models()
    assert sorted(built) == sorted(NAMES)
    return built


@pytest.mark.parametrize("name", NAMES)
def test_static_decoder_matches_generate(models: dict[str, Any], name: str) -> None:
    model = models[name].eval()
    torch.manual_seed(1)
    ids = torch.randint(3, 300, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, :6] = 0  # the second prompt is left-padded
    ref = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0
    )[:, 20:]
    decoder = StaticDecoder(model, max_len=40, batch_size=2)
    got = torch.stack(list(decoder.generate(ids, mask, max_new_tokens=10)), dim=1)
    assert got.shape == ref.shape
    assert torch.equal(got, ref)
    # a second conversation reuses the decoder (the cache is reset)
    again = torch.stack(list(decoder.generate(ids, mask, max_new_tokens=10)), dim=1)
    assert torch.equal(again, ref)


def test_static_decoder_stops_and_respects_room(models: dict[str, Any]) -> None:
    model = models["neox"].eval()
    ids = torch.randint(3, 300, (1, 30))
    decoder = StaticDecoder(model, max_len=36, batch_size=1)
    tokens = list(decoder.generate(ids, max_new_tokens=50))
    assert len(tokens) == 6  # only the room left in the cache
    first = int(tokens[0])
    stopped = list(decoder.generate(ids, max_new_tokens=50, should_stop=lambda t: t == first))
    assert len(stopped) == 1


@pytest.mark.parametrize("name", ["gemma3", "neox"])
def test_chunked_loss_equals_full_loss_and_gradients(models: dict[str, Any], name: str) -> None:
    model = models[name].train()
    torch.manual_seed(2)
    ids = torch.randint(0, 300, (2, 30))
    labels = ids.clone()
    labels[:, :10] = -100
    model.zero_grad()
    ref = model(input_ids=ids, labels=labels).loss
    ref.backward()
    ref_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    decoder, to_logits, frozen = decoder_and_head(model)
    assert not frozen  # every weight of the plain model trains, the head too
    total, n = chunked_lm_loss(
        decoder(input_ids=ids).last_hidden_state, labels, to_logits, chunk_tokens=7
    )
    assert n == 2 * 20
    (total / n).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.allclose(total / n, ref, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, ref_grads, strict=True))


@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_chat_decoding_loop_on_the_static_decoder_matches_the_eager_loop(
    models: dict[str, Any], name: str
) -> None:
    """serifu.inference's loop (stops, EOS, padding rows) gives the same tokens on both paths."""
    from serifu.inference.decoding import _static_steps, decode_steps

    model = models[name].eval()
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17]]
    kwargs: dict[str, Any] = {
        "pad_id": 0,
        "eos_ids": {42},
        "params": {"do_sample": False, "repetition_penalty": 1.1},
        "max_new_tokens": 12,
    }

    def done(row: int, ids: list[int]) -> bool:
        return len(ids) >= 4 + row * 3  # rows finish at different steps

    eager = [list(map(list, step)) for step in decode_steps(model, prompts, is_done=done, **kwargs)]
    from serifu.inference.decoding import left_pad

    ids, mask = left_pad(prompts, 0, "cpu")
    decoder = StaticDecoder(model, max_len=32, batch_size=3, graph=False)
    static = [
        list(map(list, step))
        for step in _static_steps(decoder, ids, mask, is_done=done, generator=None, **kwargs)
    ]
    assert static == eager
    assert [len(r) for r in eager[-1]] == [4, 7, 10]


def test_frozen_head_loss_takes_its_gradient_in_forward() -> None:
    """With the head frozen (QLoRA), gradients reach the hidden states exactly as through
    the checkpointed chunks, and the head runs no backward of its own."""
    torch.manual_seed(3)
    head = torch.nn.Linear(16, 300, bias=False).requires_grad_(False)
    hidden = torch.randn(2, 25, 16, requires_grad=True)
    labels = torch.randint(0, 300, (2, 25))
    labels[0, :8] = -100
    out = {}
    for frozen in (False, True):
        hidden.grad = None
        total, n = chunked_lm_loss(hidden, labels, head, chunk_tokens=7, head_frozen=frozen)
        (total * 0.5).backward()
        out[frozen] = (float(total), n, hidden.grad.clone())
    assert out[True][1] == out[False][1] == 2 * 24 - 7
    assert out[True][0] == pytest.approx(out[False][0], rel=1e-6)
    assert torch.allclose(out[True][2], out[False][2], atol=1e-7)
    with torch.no_grad():  # no gradient wanted: the plain path, same value
        assert float(chunked_lm_loss(hidden, labels, head, head_frozen=True)[0]) == pytest.approx(
            out[True][0], rel=1e-6
        )


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_closed_form_head_gradient_matches_autograd(softcap: float | None, dtype: Any) -> None:
    """The frozen linear head's in-place closed-form gradient (softmax - onehot, times the
    softcap's slope, @ W) gives autograd's loss and hidden-state gradient, bias included."""
    torch.manual_seed(4)
    head = torch.nn.Linear(16, 300).to(dtype).requires_grad_(False)
    hidden = torch.randn(2, 25, 16, dtype=dtype).mul(3).requires_grad_(True)
    labels = torch.randint(0, 300, (2, 25))
    labels[1, 5:12] = -100

    def to_logits(h: torch.Tensor) -> torch.Tensor:  # the softcap in float32, as the closed form
        logits = head(h).float()
        return torch.tanh(logits / softcap) * softcap if softcap else logits

    out = {}
    for linear in (None, LinearHead(head.weight, head.bias, softcap)):
        hidden.grad = None
        total, n = chunked_lm_loss(
            hidden, labels, to_logits, chunk_tokens=7, head_frozen=True, linear=linear
        )
        (total * 0.5).backward()
        out[linear is None] = (float(total), n, hidden.grad.float())
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert out[True][1] == out[False][1] == 2 * 24 - 7
    assert out[False][0] == pytest.approx(out[True][0], rel=tol)
    assert torch.allclose(out[False][2], out[True][2], rtol=tol, atol=tol * 0.05)
    assert out[False][2].abs().sum() > 0


def test_frozen_linear_head_is_found_only_for_plain_frozen_heads(models: dict[str, Any]) -> None:
    model = models["gemma3"]
    assert frozen_linear_head(model) is None  # its head trains here
    model.requires_grad_(False)
    try:
        found = frozen_linear_head(model)
        assert found is not None and found.weight is model.get_output_embeddings().weight
    finally:
        model.requires_grad_(True)


def test_weighted_linear_head_loss_leaves_out_weight_zero_rows() -> None:
    """Fixed-shape loss (the step-capture bench): weight-0 rows add nothing to the loss and
    get no gradient; the rest equal the loss over those rows alone."""
    torch.manual_seed(5)
    head = LinearHead(torch.randn(300, 16), torch.randn(300))
    h = torch.randn(40, 16, requires_grad=True)
    y = torch.randint(0, 300, (40,))
    weight = (torch.rand(40) > 0.4).float()
    total = linear_head_loss(h, y, head, chunk_tokens=16, weight=weight)
    total.backward()
    keep = weight.bool()
    ref_h = h.detach()[keep].requires_grad_(True)
    logits = torch.nn.functional.linear(ref_h, head.weight, head.bias)
    ref = torch.nn.functional.cross_entropy(logits, y[keep], reduction="sum")
    ref.backward()
    assert float(total) == pytest.approx(float(ref), rel=1e-6)
    assert torch.allclose(h.grad[keep], ref_h.grad, atol=1e-6)
    assert not h.grad[~keep].any()


@pytest.mark.parametrize("softcap", [None, 30.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_out_of_place_softmax_gradient_matches_the_in_place_one(
    softcap: float | None, weighted: bool
) -> None:
    """:func:`softmax_nll_grad` (the form ``torch.compile`` fuses on a GPU, a bench row) gives
    the in-place closed form's loss and input gradient; compiled by inductor on this CPU
    too where a C compiler is found."""
    from serifu.accel.loss import LinearHead, linear_head_chunk, softmax_nll_grad
    from serifu.training.compile import compiler_unavailable

    torch.manual_seed(0)
    w = torch.randn(300, 16, dtype=torch.bfloat16)
    h = torch.randn(12, 16, dtype=torch.bfloat16)
    y = torch.randint(0, 300, (12,))
    weight = (torch.arange(12) % 3 != 0).float() if weighted else None
    head = LinearHead(w, None, softcap)
    want_loss, want_grad = linear_head_chunk(head, h, y, weight)
    fns = [softmax_nll_grad]
    if compiler_unavailable("cpu") is None:
        fns.append(torch.compile(softmax_nll_grad, fullgraph=True))
    for fn in fns:
        loss, g = fn(torch.nn.functional.linear(h, w), y, weight, softcap)
        assert g.dtype == torch.bfloat16
        assert float(loss) == pytest.approx(float(want_loss), rel=1e-5)
        torch.testing.assert_close((g @ w).to(h.dtype), want_grad, rtol=2e-2, atol=2e-3)
