"""A Llama attention's rotary embedding left to the split-key attention in the steps whose
key and value it writes (serifu.accel.rope_fold): the logits, tokens and caches are the
model's own, eager and compiled; passes the kernel does not take rotate before they write;
other architectures and decoders without the lever keep the model's own attention."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel import rope_fold, split_kv
from serifu.accel.decode import StaticDecoder
from serifu.accel.kv_write import layer_class
from serifu.accel.rope_fold import ROPE, RopeAttention, rotate
from serifu.accel.split_kv import attention_forward, use_split_kv


@pytest.fixture(scope="module")
def models(split_kv_models: dict[str, Any]) -> dict[str, Any]:
    return split_kv_models


def _run(model: Any, rope: bool, backend: str | None = None, shared: bool = False) -> Any:
    """Prompt, then five greedy steps with kv_write on: the decoder's count of folded
    attention modules, the logits, the caches' keys and values, and the kernels inductor
    generated for the steps (none unless ``backend`` is inductor)."""
    from torch._inductor import metrics

    torch._dynamo.reset()
    # 160 slots: 16-wide heads split into 64-key chunks (one chunk would run HF's sdpa)
    dec = StaticDecoder(
        model, max_len=160, graph=False, kv_write=True, kv_rope=rope,
        compile=backend is not None, compile_prompt=False, shared_length=shared,
    )  # fmt: skip
    if backend is not None:
        dec.compile_backend = backend
    ids = torch.randint(3, 300, (1, 70), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = [dec.prefill(ids, torch.ones_like(ids))]
        metrics.reset()
        for _ in range(5):
            logits.append(dec.step(logits[-1].argmax(-1)))
    caches = [(x.keys.clone(), x.values.clone()) for x in dec.cache.layers]
    return dec.kv_rope, torch.stack(logits), caches, metrics.generated_kernel_count


def _rotating_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each call of the writing op: whether it got the cos and sin to rotate by."""
    calls: list[bool] = []
    op = split_kv.decode_attention_write

    def counted(*args: Any) -> torch.Tensor:
        calls.append(len(args) > 8 and args[8] is not None)
        return op(*args)

    monkeypatch.setattr(split_kv, "decode_attention_write", counted)
    return calls


@pytest.mark.parametrize("shared", [False, True])
def test_the_op_rotates_what_the_model_would_have(
    models: dict[str, Any], shared: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = models["llama"]
    plain = _run(model, rope=False, shared=shared)
    assert plain[0] == 0 and not any(isinstance(m, RopeAttention) for m in model.modules())
    calls = _rotating_calls(monkeypatch)
    got = _run(model, rope=True, shared=shared)
    layers = model.config.num_hidden_layers
    assert got[0] == layers
    assert calls == [True] * (5 * layers)  # every step's layers, unrotated; prompts as before
    assert torch.equal(got[1], plain[1])
    for (k, v), (k0, v0) in zip(got[2], plain[2], strict=True):
        assert torch.equal(k, k0) and torch.equal(v, v0)  # the rotated keys were stored


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_a_compiled_step_gives_the_models_logits_and_caches(
    models: dict[str, Any], backend: str
) -> None:
    model = models["llama"]
    plain = _run(model, rope=False, backend=backend, shared=True)
    got = _run(model, rope=True, backend=backend, shared=True)
    assert got[0] == model.config.num_hidden_layers
    torch.testing.assert_close(got[1], plain[1], atol=1e-5, rtol=1e-5)
    for (k, v), (k0, v0) in zip(got[2], plain[2], strict=True):
        torch.testing.assert_close(k, k0, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(v, v0, atol=1e-6, rtol=1e-6)
    if backend == "inductor":  # the traced step took the fold: its rotary kernels are gone
        assert 0 < got[3] < plain[3]


def test_attention_off_the_kernels_path_rotates_before_it_writes(
    models: dict[str, Any],
) -> None:
    """A cache of one chunk (40 slots) runs HF's sdpa: the deferred key is rotated, then
    written; the query is rotated too."""
    attn = models["llama"].model.layers[0].self_attn
    layer = layer_class()(max_cache_len=40)
    g = torch.Generator().manual_seed(0)
    layer.update(*(torch.randn(1, 4, 30, 16, generator=g) for _ in "kv"))  # a prompt
    new_k, new_v, q = (torch.randn(1, 4, 1, 16, generator=g) for _ in "kvq")
    angle = torch.randn(1, 1, 8, generator=g).repeat(1, 1, 2)
    cos, sin = angle.cos(), angle.sin()
    kwargs: dict[str, Any] = {ROPE: (cos, sin)}
    keys, values = layer.update(new_k, new_v, kwargs=kwargs)
    mask = (torch.arange(40) <= 30).view(1, 1, 1, 40)
    out, _ = attention_forward(attn, q, keys, values, mask, scaling=0.25, **kwargs)
    assert torch.equal(keys[:, :, 30:31], rotate(new_k, cos, sin))
    assert torch.equal(values[:, :, 30:31], new_v)
    ref = torch.nn.functional.scaled_dot_product_attention(
        rotate(q, cos, sin), keys, values, mask, scale=0.25
    )
    torch.testing.assert_close(out, ref.transpose(1, 2))


def test_rotate_is_llamas_rotary_embedding() -> None:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 4, 3, 16, generator=g), torch.randn(2, 2, 3, 16, generator=g)
    cos, sin = torch.randn(2, 3, 16, generator=g), torch.randn(2, 3, 16, generator=g)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    assert torch.equal(rotate(q, cos, sin), q_ref) and torch.equal(rotate(k, cos, sin), k_ref)


def test_only_llama_attention_folds_and_only_with_kv_write(models: dict[str, Any]) -> None:
    for name in ("gemma3", "gptj", "neox"):  # other rotary embeddings: left as they are
        dec = StaticDecoder(models[name], max_len=16, graph=False, kv_write=True, kv_rope=True)
        assert dec.kv_rope == 0
    model = models["llama"]
    assert StaticDecoder(model, max_len=16, graph=False, kv_rope=True).kv_rope == 0  # no write
    folded = StaticDecoder(model, max_len=16, graph=False, kv_write=True, kv_rope=True)
    assert folded.kv_rope == 2
    StaticDecoder(model, max_len=16, graph=False, kv_write=True)  # off: the model's own again
    assert not any(isinstance(m, RopeAttention) for m in model.modules())


def test_a_folded_attention_without_deferring_layers_runs_its_own_forward(
    models: dict[str, Any],
) -> None:
    """The model folded by one decoder, then run with a plain cache (generate): same tokens."""
    model = models["llama"]
    ids = torch.randint(3, 300, (1, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = model.generate(ids, max_new_tokens=6, do_sample=False)
        assert rope_fold.fold_rope(model) == 2
        try:
            after = model.generate(ids, max_new_tokens=6, do_sample=False)
        finally:
            rope_fold.drop_rope(model)
    assert torch.equal(before, after)


def test_a_folded_attention_still_fuses_its_siblings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whitelists name the model's own classes: q/k/v fuse into one GEMV whether the
    attention was folded before or after (on an H100 a folded attention first left its three
    GEMVs apart, 4.6 % slower), and its step calls the group's leader alone."""
    from serifu.accel import gemv as gemv_module
    from serifu.accel.gemv import GemvLinear, use_gemv
    from serifu.accel.gemv_fuse import fused_groups
    from tests.accel.test_gemv import _half_models

    monkeypatch.setattr(gemv_module, "_CPU_KERNEL", True)  # one-row CPU inputs: the kernel path
    model = _half_models()["llama"]
    assert use_split_kv(model)
    assert rope_fold.fold_rope(model) == 2
    use_gemv(model, fold=True, fuse=True)
    assert fused_groups(model) == 4  # q/k/v and gate/up of both layers
    assert rope_fold.fold_rope(model) == 2 and fused_groups(model) == 4
    attn = model.model.layers[0].self_attn
    assert isinstance(attn, RopeAttention) and attn.q_proj._sibling is not None
    runs: list[str] = []
    names = {id(m): n for n, m in model.named_modules()}
    for m in model.modules():
        if type(m) is GemvLinear:
            m.register_forward_hook(lambda mod, *_: runs.append(names[id(mod)]))
    layer = layer_class()(max_cache_len=64)
    layer.update(*(torch.randn(1, 4, 10, 16, dtype=torch.bfloat16) for _ in "kv"))

    class Cache:  # one deferring layer, updated as transformers' caches update theirs
        layers = [layer]

        def update(self, k: Any, v: Any, index: int, **kw: Any) -> Any:
            return self.layers[index].update(k, v, **kw)

    cache = Cache()
    hidden = torch.randn(1, 1, 64, dtype=torch.bfloat16)
    angle = torch.randn(1, 1, 8).repeat(1, 1, 2)
    rope = (angle.cos().to(torch.bfloat16), angle.sin().to(torch.bfloat16))
    with torch.no_grad():
        attn(hidden, position_embeddings=rope, attention_mask=None, cache=cache)
    assert int(layer.cumulative_length) == 11  # deferred, then written by the attention op
    assert runs[:3] == [f"model.layers.0.self_attn.{n}_proj" for n in "qkv"]
