"""The reply step's key and value written by the split-key attention (serifu.accel.kv_write):
a layer's one-token update leaves the write to the attention op, which writes where the
update would have; the logits, tokens, caches and lengths are the plain update's, eager and
compiled, and every path that does not take the op still writes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel import kv_write, split_kv
from serifu.accel.decode import StaticDecoder
from serifu.accel.shared_length import lengths
from serifu.accel.split_kv import attention_forward, use_split_kv
from tests.accel.test_accel import NAMES

# GPT-NeoX's attention does not pass its keyword arguments to the cache: it keeps writing
DEFERS = {"gemma3": True, "gptj": True, "llama": True, "neox": False}


@pytest.fixture(scope="module")
def models(split_kv_models: dict[str, Any]) -> dict[str, Any]:
    return split_kv_models


def _prompt() -> tuple[torch.Tensor, torch.Tensor]:
    # 70 tokens: past the tiny Gemma 3's 64-token sliding window, whose mask the op then takes
    ids = torch.randint(3, 300, (1, 70), generator=torch.Generator().manual_seed(1))
    return ids, torch.ones_like(ids)


def _run(
    model: Any, kv: bool, backend: str | None = None, open_mask: bool = False, shared: bool = False
) -> Any:
    """Prompt, then five steps: logits, the caches' keys and values, their lengths.
    ``open_mask``: the decoder's own mask opened to every slot after the prompt, so that only
    the causal mask (from the cache's length) hides the slots not yet written."""
    torch._dynamo.reset()
    # 160 slots: 16-wide heads split into 64-key chunks (one chunk would run HF's sdpa)
    dec = StaticDecoder(
        model, max_len=160, graph=False, kv_write=kv, compile=backend is not None,
        compile_prompt=False, shared_length=shared,
    )  # fmt: skip
    if backend is not None:
        dec.compile_backend = backend
    ids, mask = _prompt()
    with torch.no_grad():
        logits = [dec.prefill(ids, mask)]
        if open_mask:
            dec.mask.fill_(1)
        for _ in range(5):
            logits.append(dec.step(logits[-1].argmax(-1)))
    layers = dec.cache.layers
    assert len(lengths(dec.cache)) == (1 if shared else len(layers))
    return (
        dec.kv_write,
        torch.stack(logits),
        [(x.keys.clone(), x.values.clone()) for x in layers],
        [int(x.cumulative_length) for x in layers],
    )


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    op = split_kv.decode_attention_write

    def counted(*args: Any) -> torch.Tensor:
        calls.append(1)
        return op(*args)

    monkeypatch.setattr(split_kv, "decode_attention_write", counted)
    return calls


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_the_op_writes_what_the_update_would_have(
    models: dict[str, Any], name: str, shared: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``shared``: every layer on one length, which the first layer advances in a step (the
    last in a prompt), and every kernel writes at the length less one."""
    model = models[name]
    plain = _run(model, kv=False)
    calls = _counting(monkeypatch)
    got = _run(model, kv=True, shared=shared)
    layers = model.config.num_hidden_layers
    assert plain[0] == 0 and got[0] == layers  # every layer of the cache defers
    assert len(calls) == (5 * layers if DEFERS[name] else 0)  # each step's layers, not prompts
    assert torch.equal(got[1], plain[1])
    for (k, v), (k0, v0) in zip(got[2], plain[2], strict=True):
        assert torch.equal(k, k0) and torch.equal(v, v0)
    assert got[3] == plain[3] == [75] * layers


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_a_compiled_step_gives_the_plain_updates_logits_and_caches(
    models: dict[str, Any], backend: str, shared: bool
) -> None:
    """The decoder's own mask opened, so a causal mask built from a length advanced too early
    (or late) would let a step attend to an unwritten slot and change the logits: inductor
    recomputed the mask after the op when the op itself advanced the length."""
    model = models["llama"]
    plain = _run(model, kv=False, backend=backend, open_mask=True)
    got = _run(model, kv=True, backend=backend, open_mask=True, shared=shared)
    torch.testing.assert_close(got[1], plain[1], atol=1e-5, rtol=1e-5)
    for (k, v), (k0, v0) in zip(got[2], plain[2], strict=True):
        torch.testing.assert_close(k, k0, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(v, v0, atol=1e-6, rtol=1e-6)
    assert got[3] == plain[3]


def test_attention_off_the_kernels_path_writes_the_pending_key_first(
    models: dict[str, Any],
) -> None:
    """A cache of one chunk (40 slots) runs HF's sdpa: the deferred key and value are written
    first, at the position the update advanced past."""
    model = models["llama"]
    layer = kv_write.layer_class()(max_cache_len=40)
    g = torch.Generator().manual_seed(0)
    prompt_k, prompt_v = (torch.randn(1, 4, 30, 16, generator=g) for _ in "kv")
    layer.update(prompt_k, prompt_v)  # a prompt: written, as StaticLayer writes it
    new_k, new_v, q = (torch.randn(1, 4, 1, 16, generator=g) for _ in "kvq")
    kwargs: dict[str, Any] = {}
    keys, values = layer.update(new_k, new_v, kwargs=kwargs)
    assert int(layer.cumulative_length) == 31 and not keys[:, :, 30].any()  # not yet written
    mask = (torch.arange(40) <= 30).view(1, 1, 1, 40)
    attn = model.model.layers[0].self_attn
    out, _ = attention_forward(attn, q, keys, values, mask, scaling=0.25, **kwargs)
    assert torch.equal(keys[:, :, 30:31], new_k) and torch.equal(values[:, :, 30:31], new_v)
    assert torch.equal(keys[:, :, :30], prompt_k) and not keys[:, :, 31:].any()
    ref = torch.nn.functional.scaled_dot_product_attention(q, keys, values, mask, scale=0.25)
    torch.testing.assert_close(out, ref.transpose(1, 2))


def test_on_only_where_the_attention_splits_keys_and_asked(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = models["llama"]
    monkeypatch.delenv("SERIFU_DECODE_KV_WRITE", raising=False)
    assert StaticDecoder(model, max_len=16, graph=False).kv_write == 0  # opt-in
    monkeypatch.setenv("SERIFU_DECODE_KV_WRITE", "1")
    assert StaticDecoder(model, max_len=16, graph=False).kv_write == 2
    both = StaticDecoder(model, max_len=16, graph=False, shared_length=True)
    assert both.kv_write == both.shared_length == 2  # deferring layers on one length
    assert [layer.first for layer in both.cache.layers] == [True, False]
    model.set_attn_implementation("sdpa")
    try:
        assert StaticDecoder(model, max_len=16, graph=False).kv_write == 0  # sdpa writes itself
    finally:
        assert use_split_kv(model)


def test_batches_write_through_the_update(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rows (more than split_kv.MAX_ROWS): the update writes as StaticLayer does."""
    model = models["gptj"]
    calls = _counting(monkeypatch)
    ids = torch.randint(3, 300, (2, 12), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    out = []
    for kv in (False, True):
        dec = StaticDecoder(model, max_len=160, batch_size=2, graph=False, kv_write=kv)
        out.append(torch.cat(list(dec.greedy(ids, mask, max_new_tokens=6)), 1))
    assert torch.equal(out[0], out[1]) and not calls
