"""One write position for every layer of the decoder's static cache (serifu.accel.shared_length):
the layers share one length tensor that the last layer advances, so a pass advances it once;
the tokens are those of per-layer lengths, through prompts, steps, crops and shifts."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel.decode import StaticDecoder, _cache_kwarg
from serifu.accel.shared_length import layer_class, lengths, share_length
from tests.accel.test_accel import NAMES, _models
from tests.accel.test_greedy import _eager, _prompts


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _models()


@pytest.mark.parametrize("name", NAMES)
def test_one_length_advanced_once_a_pass_gives_the_same_tokens(
    models: dict[str, Any], name: str
) -> None:
    model = models[name].eval()
    ids, mask = _prompts()
    ref = _eager(model, ids, mask, 9)
    dec = StaticDecoder(model, max_len=40, batch_size=2, graph=False, chunk=3, shared_length=True)
    layers = model.config.num_hidden_layers
    assert dec.shared_length == layers
    got = torch.cat(list(dec.greedy(ids, mask, max_new_tokens=9)), dim=1)
    assert torch.equal(got, ref)
    (length,) = lengths(dec.cache)  # one tensor for every layer ...
    assert all(layer.cumulative_length is length for layer in dec.cache.layers)
    assert int(length) == ids.shape[1] + 8  # ... advanced by the prompt, then once a step
    dec.cache.crop(-2)  # a crop moves it once too
    assert int(length) == ids.shape[1] + 6
    plain = StaticDecoder(model, max_len=40, batch_size=2, graph=False, shared_length=False)
    assert plain.shared_length == 0 and not isinstance(plain.cache.layers[0], layer_class())


def test_the_environment_turns_it_on_and_a_used_cache_stays(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = models["llama"].eval()
    monkeypatch.delenv("SERIFU_DECODE_SHARED_LENGTH", raising=False)
    assert StaticDecoder(model, max_len=16, graph=False).shared_length == 0  # opt-in
    monkeypatch.setenv("SERIFU_DECODE_SHARED_LENGTH", "1")
    dec = StaticDecoder(model, max_len=16, graph=False)
    assert dec.shared_length == model.config.num_hidden_layers
    assert share_length(dec.cache) == dec.shared_length  # a second call keeps them
    from transformers import StaticCache

    used = StaticCache(config=model.config, max_cache_len=16)
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7]]), use_cache=True, **{_cache_kwarg(model): used})
    assert share_length(used) == 0  # layers holding keys are left as they are


def test_a_compiled_step_advances_the_length_once(models: dict[str, Any]) -> None:
    """The traced step holds one in-place add on the length, where per-layer lengths hold one a
    layer (each a kernel of its own in the GPU's step graph)."""
    model = models["llama"].eval()
    layers = model.config.num_hidden_layers
    adds = {}
    for shared in (False, True):
        dec = StaticDecoder(model, max_len=24, graph=False, shared_length=shared)
        ids = torch.randint(3, 300, (1, 6), generator=torch.Generator().manual_seed(0))
        dec.prefill(ids, torch.ones_like(ids))
        found: list[int] = []

        def backend(gm: torch.fx.GraphModule, example: Any, found: list[int] = found) -> Any:
            found.append(sum(1 for n in gm.graph.nodes if n.target in ("add_", torch.Tensor.add_)))
            return gm.forward

        torch._dynamo.reset()
        try:
            step = torch.compile(model, backend=backend, fullgraph=True, dynamic=False)
            kw = {_cache_kwarg(model): dec.cache}
            mask = torch.ones(1, 7, dtype=torch.long)
            with torch.no_grad():
                step(input_ids=ids[:, :1], attention_mask=mask, use_cache=True, **kw)
        finally:
            torch._dynamo.reset()
        adds[shared] = found[0]
    assert adds[True] >= 1 and adds[False] - adds[True] == layers - 1
