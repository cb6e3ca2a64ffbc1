"""Sibling GEMV layers fused into one GEMV (serifu.accel.gemv_fuse): which groups fuse, their
weights as views of one tensor, and that the model computes what it did. The one-row path
runs on the CPU here through the op's PyTorch reference (``gemv._CPU_KERNEL``); the Triton
kernel itself on CUDA only (bench/gpu/decode_levers.py, ``gemv-fuse`` against ``default``)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import torch

from serifu.accel import gemv as gemv_module
from serifu.accel.decode import _cache_kwarg
from serifu.accel.gemv import GemvLinear, drop_gemv, gemv, use_gemv
from serifu.accel.gemv_fuse import FusedGroup, fuse_siblings, fused_groups
from tests.accel.test_accel import NAMES
from tests.accel.test_gemv import _half_models

# sibling groups per decoder layer: Llama and Gemma 3 q/k/v and gate/up, GPT-J q/k/v, GPT-NeoX
# none (its query_key_value is one layer already)
GROUPS_PER_LAYER = {"llama": 2, "gemma3": 2, "gptj": 1, "neox": 0}


@pytest.fixture
def kernel_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """One-row CPU inputs take the kernel's path (the op's reference), fused groups too."""
    monkeypatch.setattr(gemv_module, "_CPU_KERNEL", True)


def _model(name: str) -> Any:
    return _half_models()[name]


def _groups(model: Any) -> list[FusedGroup]:
    """The model's fused groups, in module order."""
    siblings = [m._sibling for m in model.modules() if type(m) is GemvLinear]
    return [s.group for s in siblings if s is not None and s.index == 0]


def _step_logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """The last token's logits after the others as a prompt: a one-row step over a cache of
    several positions (with a single position, attention ignores q and k)."""
    kw = _cache_kwarg(model)  # transformers >= 5.2x: "cache"
    with torch.no_grad():
        past = getattr(model(input_ids=ids[:, :-1], use_cache=True), kw)
        return model(input_ids=ids[:, -1:], use_cache=True, **{kw: past}).logits


def _ids(n: int = 9, rows: int = 1) -> torch.Tensor:
    return torch.randint(3, 300, (rows, n), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", NAMES)
def test_the_whitelisted_siblings_fuse(name: str) -> None:
    """Each architecture's groups, leader first; a second call keeps them as they are."""
    model = _model(name)
    use_gemv(model, fold=True, fuse=True)
    layers = model.config.num_hidden_layers
    assert fused_groups(model) == GROUPS_PER_LAYER[name] * layers
    names = {id(m): n.rsplit(".", 1)[-1] for n, m in model.named_modules()}
    for group in _groups(model):
        assert [names[id(m)] for m in group.layers] in (
            ["q_proj", "k_proj", "v_proj"],
            ["gate_proj", "up_proj"],
        )
    before = {id(g): g.weight.data_ptr() for g in _groups(model)}
    assert fuse_siblings(model) == GROUPS_PER_LAYER[name] * layers
    after = {id(g): g.weight.data_ptr() for g in _groups(model)}
    assert after == before  # the same group objects over the same memory


def test_unknown_parents_and_mixed_biases_stay_unfused() -> None:
    model = _model("llama")
    attn = model.model.layers[0].self_attn
    attn.k_proj.bias = torch.nn.Parameter(torch.zeros(64, dtype=torch.bfloat16))  # k only
    use_gemv(model, fuse=True)
    assert attn.q_proj._sibling is None and attn.k_proj._sibling is None
    assert fused_groups(model) == 3  # the other layer's two, and this layer's MLP

    class Renamed(torch.nn.Module):  # not in SIBLINGS
        def __init__(self) -> None:
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj = (
                torch.nn.Linear(8, 8, dtype=torch.bfloat16) for _ in range(3)
            )

    other = Renamed()
    use_gemv(other, fuse=True)
    assert type(other.q_proj) is GemvLinear and fused_groups(other) == 0


def test_the_weights_become_views_of_one_tensor() -> None:
    """Each group's weights are consecutive rows of one new tensor; the separate ones are
    freed, so the model's weight bytes do not grow; their values are unchanged."""
    model = _model("llama")

    def weight_bytes() -> int:
        storages = {p.untyped_storage().data_ptr(): p.untyped_storage() for p in model.parameters()}
        return sum(s.nbytes() for s in storages.values())

    total = weight_bytes()
    mlp = model.model.layers[1].mlp
    old = weakref.ref(mlp.gate_proj.weight)
    values = {n: p.detach().clone() for n, p in model.named_parameters()}
    use_gemv(model, fold=True, fuse=True)
    gc.collect()
    assert old() is None
    assert weight_bytes() == total
    for group in _groups(model):
        ws = [m.weight for m in group.layers]
        assert len({w.untyped_storage().data_ptr() for w in ws}) == 1
        assert ws[0].untyped_storage().nbytes() == sum(w.numel() * w.element_size() for w in ws)
        for a, b in zip(ws, ws[1:], strict=False):
            assert b.data_ptr() == a.data_ptr() + a.numel() * a.element_size()
        assert all(type(w) is torch.nn.Parameter and w.requires_grad for w in ws)
    assert all(torch.equal(p, values[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_a_fused_step_computes_what_the_separate_gemvs_did(
    kernel_on_cpu: None, name: str, fold: bool
) -> None:
    """A one-row step over a cache: the groups' one GEMV (a folded norm's sums concatenated)
    gives the logits each layer's own GEMV gave, and each runs once per group."""
    model = _model(name)
    ids = _ids()
    use_gemv(model, fold=fold)
    ref = _step_logits(model, ids)
    use_gemv(model, fold=fold, fuse=True)
    calls: list[int] = []
    real = gemv_module.gemv

    def counted(x: torch.Tensor, weight: torch.Tensor, *args: Any) -> torch.Tensor:
        calls.append(weight.shape[0])
        return real(x, weight, *args)

    import serifu.accel.gemv_fuse as fuse_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fuse_module, "gemv", counted)
        got = _step_logits(model, ids)
    torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-3)
    assert len(calls) == GROUPS_PER_LAYER[name] * model.config.num_hidden_layers
    assert all(g.x is None and g.out is None for g in _groups(model))


def test_a_follower_on_another_input_computes_its_own(kernel_on_cpu: None) -> None:
    model = _model("llama")
    use_gemv(model, fold=True, fuse=True)
    attn = model.model.layers[0].self_attn
    q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
    g = torch.Generator().manual_seed(4)
    x1, x2 = (torch.randn(1, 1, 64, generator=g).to(torch.bfloat16) for _ in range(2))

    def own(m: GemvLinear, x: torch.Tensor) -> torch.Tensor:
        return gemv(x, m.weight, m.bias, *m.folded())

    with torch.no_grad():
        assert torch.equal(k(x1), own(k, x1))  # no leader before it
        assert torch.equal(q(x1), own(q, x1))
        assert torch.equal(k(x2), own(k, x2))  # not the leader's input: not its stale slice
        assert not torch.equal(own(k, x2), own(k, x1))
        group = _groups(model)[0]
        assert group.layers == [q, k, v]
        assert group.x is x1
        assert torch.equal(v(x1), own(v, x1))  # the leader's input: its slice
        assert group.x is None and group.out is None  # the last sibling forgets it
        q(x1)
        assert torch.equal(v(x1.clone()), own(v, x1))  # equal values, another tensor


def test_prompts_batches_and_autograd_run_each_layer_as_before(kernel_on_cpu: None) -> None:
    model = _model("llama")
    prompt, rows = _ids(12), _ids(1, rows=2)
    with torch.no_grad():
        ref_prompt, ref_rows = model(input_ids=prompt).logits, model(input_ids=rows).logits
    ref_grad = model(input_ids=prompt[:, :1]).logits
    use_gemv(model, fold=True, fuse=True)
    assert fused_groups(model) == 4
    with torch.no_grad():
        assert torch.equal(model(input_ids=prompt).logits, ref_prompt)
        assert torch.equal(model(input_ids=rows).logits, ref_rows)
    got = model(input_ids=prompt[:, :1]).logits  # one row, autograd on: nn.Linear's forward
    assert torch.equal(got, ref_grad)
    got.float().sum().backward()
    q = model.model.layers[0].self_attn.q_proj
    assert q.weight.grad is not None and q.weight.grad.shape == q.weight.shape


def test_drop_gemv_unfuses_and_use_gemv_refuses_in_place(kernel_on_cpu: None) -> None:
    model = _model("gemma3")
    ids = _ids()
    ref = _step_logits(model, ids)
    use_gemv(model, fold=True, fuse=True)
    ptrs = [m.weight.data_ptr() for g in _groups(model) for m in g.layers]
    drop_gemv(model)
    assert fused_groups(model) == 0
    assert not any("_sibling" in m.__dict__ for m in model.modules())
    assert torch.equal(_step_logits(model, ids), ref)  # plain layers on the weights' views
    use_gemv(model, fold=True, fuse=True)
    assert fused_groups(model) == 6
    assert [m.weight.data_ptr() for g in _groups(model) for m in g.layers] == ptrs  # no copy


def test_a_norm_folded_after_fusing_refuses_with_its_sums(kernel_on_cpu: None) -> None:
    """A second decoder folds into groups an unfolded call fused: they unfuse (fuse off) or
    fuse again with the norm's sums (fuse on); the step is right either way."""
    model = _model("llama")
    ids = _ids()
    use_gemv(model, fold=True)
    ref = _step_logits(model, ids)
    drop_gemv(model)
    use_gemv(model, fuse=True)
    assert fused_groups(model) == 4
    use_gemv(model, fold=True)
    assert fused_groups(model) == 0
    torch.testing.assert_close(_step_logits(model, ids), ref, atol=1e-3, rtol=1e-3)
    drop_gemv(model)
    use_gemv(model, fuse=True)
    use_gemv(model, fold=True, fuse=True)
    assert fused_groups(model) == 4
    assert all(g.folded[2] is not None for g in _groups(model))  # the norm's sums
    torch.testing.assert_close(_step_logits(model, ids), ref, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_a_compiled_step_runs_one_gemv_per_group(kernel_on_cpu: None, backend: str) -> None:
    """Dynamo traces the group's attribute stores as side effects: the graph holds one gemv
    per group (4 per Llama layer, not 7), no more graphs or outputs than unfused, and the
    compiled logits equal the eager ones."""
    model = _model("llama")
    one = _ids(1)

    def traced(fuse: bool) -> tuple[torch.Tensor, list[torch.fx.GraphModule], torch.Tensor]:
        drop_gemv(model)
        use_gemv(model, fold=True, fuse=fuse)
        graphs: list[torch.fx.GraphModule] = []

        def capture(gm: torch.fx.GraphModule, inputs: Any) -> Any:
            graphs.append(gm)
            if backend == "aot_eager":
                from torch._dynamo.backends.debugging import aot_eager

                return aot_eager(gm, inputs)
            return gm.forward

        torch._dynamo.reset()
        with torch.no_grad():
            eager = model(input_ids=one).logits
            compiled = torch.compile(model, backend=capture)(input_ids=one).logits
        return eager, graphs, compiled

    def gemvs(graphs: list[torch.fx.GraphModule]) -> int:
        ops = (torch.ops.serifu.gemv, torch.ops.serifu.gemv.default)
        return sum(n.target in ops for gm in graphs for n in gm.graph.nodes)

    def outputs(graphs: list[torch.fx.GraphModule]) -> int:
        return sum(len(n.args[0]) for gm in graphs for n in gm.graph.nodes if n.op == "output")

    _, plain, _ = traced(False)
    eager, fused, compiled = traced(True)
    torch._dynamo.reset()
    layers = model.config.num_hidden_layers
    assert gemvs(plain) == 7 * layers and gemvs(fused) == 4 * layers
    assert len(fused) == len(plain) and outputs(fused) == outputs(plain)
    assert torch.equal(compiled, eager)
    assert all(g.x is None and g.out is None for g in _groups(model))


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_a_gated_mlps_product_inside_its_gemv_keeps_the_logits(
    kernel_on_cpu: None, name: str, fold: bool
) -> None:
    """``glu``: each gated MLP's one-row step runs two GEMVs (gate/up writing act(gate) * up,
    then down) and its product no kernel of its own; the logits stay those of the separate
    layers (SiLU on Llama, GELU's tanh approximation on Gemma 3)."""
    from serifu.accel.gemv_fuse import GluMLP, glu_mlps

    model = _model(name)
    ids = _ids()
    use_gemv(model, fold=fold)
    ref = _step_logits(model, ids)
    use_gemv(model, fold=fold, fuse=True, glu=True)
    layers = model.config.num_hidden_layers
    assert glu_mlps(model) == layers
    mlps = [m for m in model.modules() if isinstance(m, GluMLP)]
    assert len(mlps) == layers and all(m.gate_proj._sibling.group.glu for m in mlps)
    calls: list[tuple[int, int]] = []
    real = gemv_module.gemv

    def counted(x: torch.Tensor, weight: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
        out = real(x, weight, *args, **kw)
        calls.append((weight.shape[0], out.shape[-1]))
        return out

    import serifu.accel.gemv_fuse as fuse_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fuse_module, "gemv", counted)
        got = _step_logits(model, ids)
    torch.testing.assert_close(got, ref, atol=2e-2, rtol=2e-2)
    mlp = mlps[0]
    x = torch.randn(1, 1, mlp.gate_proj.weight.shape[1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # the MLP alone (its share of the logits is small in a tiny model)
        want = mlp.unfused.forward(mlp, x.to(torch.bfloat16)).float()
        gated = mlp(x.to(torch.bfloat16)).float()
    assert (gated - want).abs().max() <= 1e-2 * want.abs().max()
    width = mlp.gate_proj.weight.shape[0]
    assert calls.count((2 * width, width)) == layers  # gate/up in, their gated product out
    assert len(calls) == 2 * layers  # q/k/v's group and the MLP's, once each a layer
    with torch.no_grad():  # prompts: the MLP's own forward, the same numbers as before
        drop_gemv(model)
        assert not any(isinstance(m, GluMLP) for m in model.modules())
        assert not any(g.glu for g in _groups(model))
        plain = model(input_ids=ids).logits
        use_gemv(model, fold=fold, fuse=True, glu=True)
        assert torch.equal(model(input_ids=ids).logits, plain)


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_a_gated_mlps_product_inside_its_down_gemv_keeps_the_logits(
    kernel_on_cpu: None, name: str, fold: bool
) -> None:
    """``glu="down"``: each gated MLP's one-row step runs its gate/up GEMV as it is and its
    down GEMV reads that output as ``act(gate) * up``, so the product needs no kernel of its
    own and no GEMV gets wider; the logits stay those of the separate layers."""
    from serifu.accel.gemv_fuse import GluMLP, glu_mlps

    model = _model(name)
    ids = _ids()
    use_gemv(model, fold=fold)
    ref = _step_logits(model, ids)
    use_gemv(model, fold=fold, fuse=True, glu="down")
    layers = model.config.num_hidden_layers
    assert glu_mlps(model) == layers
    mlps = [m for m in model.modules() if isinstance(m, GluMLP)]
    groups = [m.gate_proj._sibling.group for m in mlps]
    assert len(mlps) == layers and all(g.glu_down and not g.glu for g in groups)
    width = mlps[0].gate_proj.weight.shape[0]
    products: list[tuple[int, int, int]] = []  # (input width, rows, in_glu) of each product
    real = gemv_module.gemv

    def counted(x: torch.Tensor, weight: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
        out = real(x, weight, *args, **kw)
        in_glu = args[7] if len(args) > 7 else kw.get("in_glu", 0)
        products.append((x.shape[-1], weight.shape[0], in_glu))
        return out

    import serifu.accel.gemv_fuse as fuse_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fuse_module, "gemv", counted)
        mp.setattr(gemv_module, "gemv", counted)
        got = _step_logits(model, ids)
    torch.testing.assert_close(got, ref, atol=2e-2, rtol=2e-2)
    downs = [p for p in products if p[2]]
    assert len(downs) == layers and all(p[0] == 2 * width for p in downs)
    assert sum(1 for p in products if p[1] == 2 * width) == layers  # gate/up as they were
    mlp = mlps[0]
    x = torch.randn(1, 1, mlp.gate_proj.weight.shape[1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # the MLP alone
        want = mlp.unfused.forward(mlp, x.to(torch.bfloat16)).float()
        gated = mlp(x.to(torch.bfloat16)).float()
    assert (gated - want).abs().max() <= 1e-2 * want.abs().max()
    use_gemv(model, fold=fold, fuse=True, glu=True)  # the other place for the product
    assert all(g.glu and not g.glu_down for g in groups)
    drop_gemv(model)
    assert not any(isinstance(m, GluMLP) for m in model.modules())
    assert not any(g.glu or g.glu_down for g in groups)


def test_the_in_glu_op_multiplies_the_gated_input() -> None:
    """The op's reference with ``in_glu``: ``F.linear(act(gate) * up, W)`` with the input
    [gate, up] twice the weight's width, rounded as the model rounds each, plain and with a
    bias; the down projection's GEMV on a gated MLP's gate/up output."""
    from serifu.accel.gemv import GELU_TANH, SILU, activation

    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 1, 96, generator=g).to(torch.bfloat16)
    w = torch.randn(20, 48, generator=g).to(torch.bfloat16)
    b = torch.randn(20, generator=g).to(torch.bfloat16)
    for code in (SILU, GELU_TANH):
        h = activation(x[..., :48], code) * x[..., 48:]
        assert torch.equal(gemv(x, w, None, in_glu=code), torch.nn.functional.linear(h, w))
        assert torch.equal(gemv(x, w, b, in_glu=code), torch.nn.functional.linear(h, w, b))
    layer = torch.nn.Linear(48, 20, bias=False).to(torch.bfloat16)
    layer.__class__ = GemvLinear
    with torch.no_grad():  # the CPU without the kernel's path: the layer's own forward
        h = activation(x[..., :48], SILU) * x[..., 48:]
        assert torch.equal(layer(x, in_glu=SILU), torch.nn.functional.linear(h, layer.weight))


def test_the_glu_op_is_the_gated_product_of_the_two_halves() -> None:
    """The op's reference (the CPU path; the Triton kernel's on CUDA): ``act(x W_g) * (x W_u)``
    as the model rounds them, for each activation the kernel has, with a folded norm too."""
    from serifu.accel.gemv import GELU_TANH, RMS, SILU, activation, folded_sums

    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 48, generator=g).to(torch.bfloat16)
    gate, up = (torch.randn(20, 48, generator=g).to(torch.bfloat16) for _ in range(2))
    w = torch.cat([gate, up])
    for code in (SILU, GELU_TANH):
        want = activation(torch.nn.functional.linear(x, gate), code) * torch.nn.functional.linear(
            x, up
        )
        assert torch.equal(gemv(x, w, None, glu=code), want)
    nw = (1 + 0.3 * torch.randn(48, generator=g)).to(torch.bfloat16)
    sums = folded_sums(w, RMS, nw, None)
    normed = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6)) * nw.float()
    want = activation(torch.nn.functional.linear(normed, gate.float()).to(x.dtype), SILU)
    want = want * torch.nn.functional.linear(normed, up.float()).to(x.dtype)
    got = gemv(x, w, None, RMS, nw, sums, 1e-6, 0, SILU)
    assert got.shape == (1, 1, 20)
    assert torch.equal(got, want)


def test_pdl_is_off_by_default_and_never_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from serifu.accel.gemv import pdl_on, set_pdl

    monkeypatch.delenv("SERIFU_GEMV_PDL", raising=False)
    cpu = torch.device("cpu")
    try:
        set_pdl(None)
        assert not pdl_on(cpu)
        set_pdl(True)
        assert not pdl_on(cpu)  # programmatic dependent launch is a CUDA (sm90+) feature
        monkeypatch.setenv("SERIFU_GEMV_PDL", "1")
        set_pdl(False)
        assert not pdl_on(cpu)
    finally:
        set_pdl(None)


def test_the_ops_fake_kernel_matches_it_for_every_argument() -> None:
    """torch.compile traces the op through its fake kernel: the shapes must be the op's for
    a folded activation and a gated product alike (a fake that read ``act`` as ``glu`` halved
    GPT-J's fc_in and broke its compiled step on the GPU, session 30)."""
    from serifu.accel.gemv import GELU_TANH, RMS, SILU, folded_sums

    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 1, 32, generator=g)
    w, b, nw = torch.randn(24, 32, generator=g), torch.randn(24, generator=g), torch.randn(32)
    sums = folded_sums(w, RMS, nw, None)
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((x, w, b), {}),
        ((x, w, b, 0, None, None, 0.0, GELU_TANH), {}),
        ((x, w, None), {"act": GELU_TANH}),
        ((x, w, None, RMS, nw, sums, 1e-6, 0, SILU), {}),
        ((x, w, None), {"glu": SILU}),
        ((torch.randn(1, 1, 64, generator=g), w, b), {"in_glu": SILU}),
    ]
    for args, kwargs in cases:
        torch.library.opcheck(torch.ops.serifu.gemv.default, args, kwargs)


@pytest.mark.parametrize(
    ("name", "glu"), [(n, True) for n in NAMES] + [("llama", "down"), ("gemma3", "down")]
)
def test_every_architectures_compiled_step_with_all_levers(
    kernel_on_cpu: None, name: str, glu: bool | str
) -> None:
    """Folded norms and activations, fused siblings, gated products and Llama's residuals
    folded (their slots side effects Dynamo tracks within the forward) traced by aot_eager
    (fake tensors through the op's fake kernel): the compiled logits equal the eager ones, and
    no residual is left pending."""
    model = _model(name)
    one = _ids(1)
    use_gemv(model, fold=True, fuse=True, glu=glu, residual=True)
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            eager = model(input_ids=one).logits
            compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(input_ids=one)
    finally:
        torch._dynamo.reset()
    assert torch.equal(compiled.logits, eager)
    slots = [m._residual for m in model.modules() if type(m) is GemvLinear]
    assert all(s is None or s.value is None for s in slots)


def test_the_decoder_fuses_by_default_and_the_environment_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fusion is the decoder's default since session 31 (+1.4 to +4.4 % in six timed pairs),
    the residual fold since session 33; each =0 turns it off; the gated product stays opt-in;
    arguments win."""
    from serifu.accel.decode import gemv_levers

    for lever in ("", "_FOLD", "_FUSE", "_GLU", "_RESIDUAL"):
        monkeypatch.delenv(f"SERIFU_GEMV{lever}", raising=False)
    assert gemv_levers() == (True, True, True, False, True)
    monkeypatch.setenv("SERIFU_GEMV_FUSE", "0")
    monkeypatch.setenv("SERIFU_GEMV_GLU", "1")
    monkeypatch.setenv("SERIFU_GEMV_RESIDUAL", "0")
    assert gemv_levers() == (True, True, False, True, False)
    assert gemv_levers(fuse=True, glu=False, residual=True) == (True, True, True, False, True)
    monkeypatch.setenv("SERIFU_GEMV", "0")
    monkeypatch.setenv("SERIFU_GEMV_RESIDUAL", "1")
    assert gemv_levers() == (False, True, False, True, True)
    monkeypatch.setenv("SERIFU_GEMV_GLU", "down")  # the product in the down projection's GEMV
    assert gemv_levers()[3] == "down"
    monkeypatch.setenv("SERIFU_GEMV_GLU", "yes")
    assert gemv_levers()[3] is False
