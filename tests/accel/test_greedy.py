"""The greedy fast path of StaticDecoder (pick, stop check and feedback on the device; chunks
of steps; captured prompt pass) gives exactly the eager path's tokens. On the CPU it runs the
same bodies without graphs, so this tests the code the GPU captures."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel.decode import StaticDecoder
from tests.accel.test_accel import NAMES, _models


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _models()


def _prompts() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(3, 300, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, :6] = 0  # the second prompt is left-padded
    return ids, mask


def _eager(model: Any, ids: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False)
    return torch.stack(list(decoder.generate(ids, mask, max_new_tokens=n)), dim=1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk", [1, 3])
def test_greedy_equals_the_eager_steps(models: dict[str, Any], name: str, chunk: int) -> None:
    model = models[name].eval()
    ids, mask = _prompts()
    ref = _eager(model, ids, mask, 11)
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=chunk)
    chunks = list(decoder.greedy(ids, mask, max_new_tokens=11))
    got = torch.cat(chunks, dim=1)
    assert torch.equal(got, ref)
    assert chunks[0].shape == (2, 1)  # the prompt's token comes alone (first-token latency)
    assert all(c.shape[1] <= chunk for c in chunks[1:])
    # the decoder is reused: the cache and the loop state are reset by the prompt pass
    assert torch.equal(torch.cat(list(decoder.greedy(ids, mask, max_new_tokens=11)), 1), ref)


def test_greedy_stops_on_device_and_pads_the_stopped_rows(models: dict[str, Any]) -> None:
    model = models["llama"].eval()
    ids, mask = _prompts()
    ref = _eager(model, ids, mask, 12)
    stop = int(ref[0, 2])  # row 0 stops at its third token
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=4)
    got = torch.cat(
        list(decoder.greedy(ids, mask, max_new_tokens=12, stop_ids=[stop], pad_id=0)), 1
    )
    first = int((ref[0] == stop).nonzero()[0])
    assert torch.equal(got[0, : first + 1], ref[0, : first + 1])
    assert bool((got[0, first + 1 :] == 0).all())  # pad after its stop token
    row1_stop = (ref[1] == stop).nonzero()
    end = int(row1_stop[0]) + 1 if len(row1_stop) else got.shape[1]
    assert torch.equal(got[1, :end], ref[1, :end])
    # every row stopped: decoding ends at the next chunk boundary, not after 12 tokens
    both = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=4)
    firsts = [int(ref[0, 0]), int(ref[1, 0])]
    out = list(both.greedy(ids, mask, max_new_tokens=12, stop_ids=firsts))
    assert len(out) == 1 and torch.equal(out[0][:, 0], ref[:, 0])


def test_greedy_respects_the_logit_mask_and_the_room(models: dict[str, Any]) -> None:
    model = models["gemma3"].eval()
    ids, mask = _prompts()
    ref = _eager(model, ids, mask, 6)
    banned = torch.zeros(300)
    banned[ref.unique()] = float("-inf")  # forbid every token the free run chose
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=8)
    got = torch.cat(list(decoder.greedy(ids, mask, max_new_tokens=6, logit_mask=banned)), 1)
    assert not bool(torch.isin(got, ref.unique()).any())
    # only the cache's room is decoded
    tight = StaticDecoder(model, max_len=26, batch_size=2, graph=False, chunk=4)
    assert torch.cat(list(tight.greedy(ids, mask, max_new_tokens=50)), 1).shape == (2, 6)


def test_a_conversation_longer_than_the_sliding_window_matches_generate() -> None:
    """Gemma's sliding-window layers: a prompt past the window gives generate's tokens."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=8,
        vocab_size=300,
    )
    model = Gemma3ForCausalLM(config).eval()
    ids, mask = _prompts()  # 20 tokens: past the window of 8
    ref = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0
    )[:, 20:]
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=4)
    assert torch.equal(torch.cat(list(decoder.greedy(ids, mask, max_new_tokens=10)), 1), ref)
    assert torch.equal(torch.stack(list(decoder.generate(ids, mask, max_new_tokens=10)), 1), ref)


@pytest.mark.slow
def test_compiled_step_gives_the_eager_tokens(models: dict[str, Any]) -> None:
    """torch.compile over the one-token step (inductor; ~40 s on the CPU), and over the second
    reply's prompt pass (left-padded rows): same tokens."""
    model = models["llama"].eval()
    ids, mask = _prompts()
    ref = _eager(model, ids, mask, 10)
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, compile=True, chunk=4)
    for _ in range(2):  # compiled once, then reused
        assert torch.equal(torch.cat(list(decoder.greedy(ids, mask, max_new_tokens=10)), 1), ref)
    assert decoder.compile and decoder.graph_error is None
    assert decoder.compile_prompt and decoder._compiled_prompt is not None


@pytest.mark.parametrize("name", ["gemma3", "llama"])
def test_greedy_logprobs_are_the_masked_log_softmax_of_the_choice(
    models: dict[str, Any], name: str
) -> None:
    """``logprobs=True`` writes what the chat loop's host pick computes, column by column."""
    model = models[name].eval()
    ids, mask = _prompts()
    banned = torch.zeros(300)
    banned[:50] = float("-inf")
    expected: list[torch.Tensor] = []

    def pick(logits: torch.Tensor) -> torch.Tensor:
        masked = logits.float() + banned
        tokens = masked.argmax(-1)
        expected.append(masked.log_softmax(-1).gather(1, tokens[:, None])[:, 0])
        return tokens

    eager = StaticDecoder(model, max_len=40, batch_size=2, graph=False)
    ref = torch.stack(list(eager.generate(ids, mask, max_new_tokens=9, pick=pick)), 1)
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=4)
    chunks = decoder.greedy(ids, mask, max_new_tokens=9, logit_mask=banned, logprobs=True)
    got = torch.cat(list(chunks), 1)
    assert torch.equal(got, ref)
    assert torch.equal(decoder.out_logprobs[:, :9], torch.stack(expected, 1))
    assert bool((decoder.out_logprobs[:, :9] < 0).all())
    # without logprobs nothing is written; max_new_tokens=0 decodes nothing
    decoder.out_logprobs.zero_()
    list(decoder.greedy(ids, mask, max_new_tokens=9, logit_mask=banned))
    assert not decoder.out_logprobs.any()
    assert list(decoder.greedy(ids, mask, max_new_tokens=0)) == []


def test_greedy_ahead_hands_over_greedys_chunks_on_the_host(models: dict[str, Any]) -> None:
    """``greedy_ahead`` (each chunk read once the next is launched) gives :meth:`greedy`'s
    chunks, log-probabilities and device stop as host lists; a caller that stops early
    leaves the decoder usable."""
    model = models["llama"].eval()
    ids, mask = _prompts()
    banned = torch.zeros(300)
    banned[:50] = float("-inf")
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=3)
    kw: dict[str, Any] = {"max_new_tokens": 10, "logit_mask": banned, "logprobs": True}
    ref = [c.tolist() for c in decoder.greedy(ids, mask, **kw)]
    scores = decoder.out_logprobs[:, :10].tolist()
    got = list(decoder.greedy_ahead(ids, mask, **kw))
    assert [t for t, _ in got] == ref and [len(t[0]) for t, _ in got] == [1, 3, 3, 3]
    assert [v for _, s in got if s is not None for v in s[0]] == scores[0]
    assert list(decoder.greedy_ahead(ids, mask, ahead=False, **kw)) == got
    stop = ref[1][0][0]  # row 0's second token: the device stops that row there
    stopped = [t for t, _ in decoder.greedy_ahead(ids, mask, max_new_tokens=10, stop_ids=[stop])]
    assert stopped == [
        c.tolist() for c in decoder.greedy(ids, mask, max_new_tokens=10, stop_ids=[stop])
    ]
    first = decoder.greedy_ahead(ids, mask, max_new_tokens=10)
    next(first)
    first.close()  # the chunk launched ahead is dropped
    assert [t for t, _ in decoder.greedy_ahead(ids, mask, **kw)] == ref


def test_launching_the_next_chunk_first_hands_over_the_same_chunks(models: dict[str, Any]) -> None:
    """``greedy_launched`` (each chunk launched before the host reads the one before it)
    yields :meth:`greedy`'s chunks and log-probabilities, ends where every row stopped (the
    chunk launched after that is not read), and leaves the decoder usable."""
    model = models["llama"].eval()
    ids, mask = _prompts()
    decoder = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=3)
    kw: dict[str, Any] = {"max_new_tokens": 10, "logprobs": True}
    ref = [c.tolist() for c in decoder.greedy(ids, mask, **kw)]
    scores = decoder.out_logprobs[:, :10].tolist()
    got = list(decoder.greedy_launched(ids, mask, **kw))
    assert [t for t, _ in got] == ref and [len(t[0]) for t, _ in got] == [1, 3, 3, 3]
    assert [v for _, s in got if s is not None for v in s[0]] == scores[0]
    assert list(decoder.greedy_ahead(ids, mask, launch=True, **kw)) == got
    # both rows stop in the second chunk: greedy reads no further, neither does this
    stops = [ref[1][0][1], ref[1][1][0]]
    want = [c.tolist() for c in decoder.greedy(ids, mask, max_new_tokens=10, stop_ids=stops)]
    assert len(want) == 2
    stopped = [t for t, _ in decoder.greedy_launched(ids, mask, max_new_tokens=10, stop_ids=stops)]
    assert stopped == want
    # every row stops at the prompt's token: one chunk, the one launched after it unread
    first = [ref[0][0][0], ref[0][1][0]]
    assert [
        t for t, _ in decoder.greedy_launched(ids, mask, max_new_tokens=10, stop_ids=first)
    ] == [ref[0]]
    assert [t for t, _ in decoder.greedy_launched(ids, mask, **kw)] == ref
    assert list(decoder.greedy_launched(ids, mask, max_new_tokens=0)) == []
