"""StaticDecoder with an output vocabulary computes only her rows of the head (softcapped as
the model does) and gives exactly the tokens of the full head masked to that vocabulary: on
the greedy device path (prompt pass and steps), and in ``prefill``/``step`` logits that the
sampling loop reads. On the CPU it runs the same bodies the GPU captures (``graph=False``)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from serifu.accel.decode import StaticDecoder
from serifu.inference.vocab import OutputVocabulary
from tests.accel.test_accel import _models
from tests.accel.test_greedy import _prompts

WIDTH = 300  # the tiny models' vocabulary


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _models()


def _vocab(k: int = 90, seed: int = 3) -> OutputVocabulary:
    return OutputVocabulary(sorted(random.Random(seed).sample(range(WIDTH), k)))


def _mask(vocab: OutputVocabulary, banned: Sequence[int] = ()) -> torch.Tensor:
    """What ``TokenRules.mask`` gives: 0 on her tokens, -inf elsewhere and on banned ones."""
    mask = torch.full((WIDTH,), float("-inf"))
    mask[vocab.ids] = 0.0
    mask[list(banned)] = float("-inf")
    return mask


def _greedy(decoder: StaticDecoder, mask: torch.Tensor, n: int) -> tuple[torch.Tensor, Any]:
    ids, attn = _prompts()
    out = torch.cat(
        list(decoder.greedy(ids, attn, max_new_tokens=n, logit_mask=mask, logprobs=True)), 1
    )
    return out, decoder.out_logprobs[:, : out.shape[1]].clone()


@pytest.mark.parametrize("name", ["gemma3", "llama"])
@pytest.mark.parametrize("chunk", [1, 4])
def test_greedy_with_her_rows_equals_the_masked_full_head(
    models: dict[str, Any], name: str, chunk: int
) -> None:
    model = models[name].eval()
    vocab = _vocab()
    full = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=chunk)
    ref, ref_lp = _greedy(full, _mask(vocab), 11)
    fast = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=chunk, vocab=vocab)
    assert fast.head_rows is not None and tuple(fast.head_rows.shape) == (90, 64)
    calls: list[int] = []  # the full head module never runs on her rows' path
    hook = model.lm_head.register_forward_hook(lambda *_: calls.append(1))
    try:
        got, got_lp = _greedy(fast, _mask(vocab), 11)
        assert not calls
        _greedy(full, _mask(vocab), 2)
        assert calls  # (the hook does see the full head)
    finally:
        hook.remove()
    assert torch.equal(got, ref)
    assert set(got.unique().tolist()) <= set(vocab.ids)
    # log-probabilities over her rows = over the masked full head (rounding only)
    assert torch.allclose(got_lp, ref_lp, atol=1e-5) and bool((got_lp < 0).all())
    # a banned token inside her vocabulary stays banned (the mask is read at her rows)
    banned = got[0, :3].tolist()
    again, _ = _greedy(fast, _mask(vocab, banned), 11)
    ref2, _ = _greedy(full, _mask(vocab, banned), 11)
    assert torch.equal(again, ref2) and not set(again[0].tolist()) & set(banned)
    # no mask at all: her vocabulary alone limits the choice
    free, _ = _greedy(fast, torch.zeros(WIDTH), 11)
    assert torch.equal(free, ref)


def test_softcapping_is_applied_to_her_rows(models: dict[str, Any]) -> None:
    model = models["gemma3"].eval()  # final_logit_softcapping = 30
    assert model.config.final_logit_softcapping == 30.0
    with torch.no_grad():  # large logits, so the cap matters
        model.lm_head.weight.mul_(40.0)
    try:
        vocab = _vocab()
        ids, attn = _prompts()
        full = StaticDecoder(model, max_len=40, batch_size=2, graph=False)
        fast = StaticDecoder(model, max_len=40, batch_size=2, graph=False, vocab=vocab)
        want = full.prefill(ids, attn).float() + _mask(vocab)
        got = fast.prefill(ids, attn)
        assert bool(want[:, vocab.ids].abs().max() > 20) and bool(want.max() <= 30)
        assert torch.allclose(got[:, vocab.ids], want[:, vocab.ids], atol=1e-4)
    finally:
        with torch.no_grad():
            model.lm_head.weight.div_(40.0)


@pytest.mark.parametrize("name", ["gemma3", "llama"])
def test_prefill_and_step_logits_and_seeded_sampling_match(
    models: dict[str, Any], name: str
) -> None:
    """The sampling loop reads ``[batch, vocab]`` logits: -inf outside her rows, her rows'
    values as the full head gives them, and the same seeded samples."""
    from serifu.inference.sampling import next_tokens

    model = models[name].eval()
    vocab = _vocab()
    mask = _mask(vocab)
    ids, attn = _prompts()
    full = StaticDecoder(model, max_len=40, batch_size=2, graph=False)
    fast = StaticDecoder(model, max_len=40, batch_size=2, graph=False, vocab=vocab)
    want, got = full.prefill(ids, attn).float() + mask, fast.prefill(ids, attn)
    assert got.shape == (2, WIDTH) and got.dtype == torch.float32
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.allclose(got[:, vocab.ids], want[:, vocab.ids], atol=1e-5)
    token = want.argmax(-1)
    want, got = full.step(token).float() + mask, fast.step(token)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.allclose(got[:, vocab.ids], want[:, vocab.ids], atol=1e-5)

    params = {"do_sample": True, "temperature": 1.3, "top_p": 0.95, "repetition_penalty": 1.2}

    def run(decoder: StaticDecoder, masked: bool) -> torch.Tensor:
        gen = torch.Generator().manual_seed(7)
        seen = [ids]

        def pick(logits: torch.Tensor) -> torch.Tensor:
            logits = logits.float() + mask if masked else logits
            chosen = next_tokens(logits, torch.cat(seen, 1), params, gen)
            seen.append(chosen[:, None])
            return chosen

        return torch.stack(list(decoder.generate(ids, attn, max_new_tokens=12, pick=pick)), 1)

    sampled = run(fast, masked=False)
    assert torch.equal(sampled, run(full, masked=True))
    assert set(sampled.unique().tolist()) <= set(vocab.ids)


def test_a_head_with_a_bias_keeps_the_full_head(models: dict[str, Any]) -> None:
    """gpt-j's head has a bias: no rows to take, the full head runs (and is masked)."""
    model = models["gptj"].eval()
    vocab = _vocab()
    fast = StaticDecoder(model, max_len=40, batch_size=2, graph=False, vocab=vocab)
    assert fast.head_rows is None
    full = StaticDecoder(model, max_len=40, batch_size=2, graph=False)
    assert torch.equal(_greedy(fast, _mask(vocab), 8)[0], _greedy(full, _mask(vocab), 8)[0])


def test_her_rows_follow_the_model_they_are_taken_from(models: dict[str, Any]) -> None:
    """One vocabulary over two models (e.g. a re-created bench model): each its own rows."""
    vocab = _vocab()
    a = vocab.head(models["gemma3"])
    b = vocab.head(models["llama"])
    assert a is not None and b is not None
    assert torch.equal(b, models["llama"].lm_head.weight.detach()[vocab.ids])
    assert vocab.head(models["llama"]) is b  # taken once per weight


@pytest.mark.slow
def test_compiled_step_with_her_rows_gives_the_same_tokens(models: dict[str, Any]) -> None:
    """torch.compile over the one-token step with her rows (inductor, ~40 s on the CPU)."""
    model = models["gemma3"].eval()
    vocab = _vocab()
    ref, _ = _greedy(StaticDecoder(model, max_len=40, batch_size=2, graph=False), _mask(vocab), 10)
    fast = StaticDecoder(
        model, max_len=40, batch_size=2, graph=False, compile=True, chunk=4, vocab=vocab
    )
    for _ in range(2):
        assert torch.equal(_greedy(fast, _mask(vocab), 10)[0], ref)
    assert fast.compile and fast.graph_error is None
