"""Each sampling key of ``next_tokens`` changes the choice the way it says."""

from __future__ import annotations

import torch

from serifu.inference.sampling import next_tokens

NONE = torch.zeros((1, 0), dtype=torch.long)


def sample_many(
    logits: torch.Tensor, params: dict, seen: torch.Tensor = NONE, n: int = 400
) -> set[int]:
    g = torch.Generator().manual_seed(0)
    rows = logits.expand(n, -1)
    return set(next_tokens(rows, seen.expand(n, -1), {"do_sample": True, **params}, g).tolist())


def test_greedy_and_logit_bias() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, float("-inf")]])
    assert next_tokens(logits, NONE, {}, None).tolist() == [0]
    assert next_tokens(logits, NONE, {"logit_bias": {2: 5.0}}, None).tolist() == [2]
    assert next_tokens(logits, NONE, {"logit_bias": {"1": 1.5}}, None).tolist() == [1]
    # a masked token stays masked; ids outside the vocabulary are ignored
    assert next_tokens(logits, NONE, {"logit_bias": {3: 100.0, 99: 100.0}}, None).tolist() == [0]


def test_repetition_presence_and_frequency_penalties() -> None:
    logits = torch.tensor([[3.0, 2.5, 0.0]])
    seen = torch.tensor([[0]])
    assert next_tokens(logits, seen, {"repetition_penalty": 1.5}, None).tolist() == [1]
    assert next_tokens(logits, seen, {"presence_penalty": 0.4}, None).tolist() == [0]
    assert next_tokens(logits, seen, {"presence_penalty": 0.6}, None).tolist() == [1]
    twice = torch.tensor([[0, 0]])
    assert next_tokens(logits, seen, {"frequency_penalty": 0.4}, None).tolist() == [0]
    assert next_tokens(logits, twice, {"frequency_penalty": 0.4}, None).tolist() == [1]


def test_top_k_top_p_and_min_p_limit_the_candidates() -> None:
    logits = torch.tensor([[2.0, 1.9, 1.8, 0.0, -1.0]])
    assert sample_many(logits, {}) == {0, 1, 2, 3, 4}
    assert sample_many(logits, {"top_k": 2}) == {0, 1}
    assert sample_many(logits, {"top_k": 1}) == {0}
    assert sample_many(logits, {"top_p": 0.5}) == {0, 1}
    # min_p 0.5: exp(0)/exp(2) = 0.14 < 0.5, exp(1.8-2) = 0.82 >= 0.5
    assert sample_many(logits, {"min_p": 0.5}) == {0, 1, 2}
    assert sample_many(logits, {"min_p": 0.5, "temperature": 0.05}) == {0}


def test_seeded_sampling_is_reproducible() -> None:
    logits = torch.zeros((8, 50))
    a = next_tokens(
        logits, NONE.expand(8, -1), {"do_sample": True}, torch.Generator().manual_seed(3)
    )
    b = next_tokens(
        logits, NONE.expand(8, -1), {"do_sample": True}, torch.Generator().manual_seed(3)
    )
    assert a.tolist() == b.tolist()
