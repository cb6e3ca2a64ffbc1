"""Batch-1 linear layers as one Triton GEMV each, for replies.

At batch 1 a reply step's linear layers are matrix-vector products that only read weights.
cuBLAS runs them as tensor-core tiles of 128+ output rows, too few thread blocks for a
3,072-row matrix, so it splits the input width and adds a reduction kernel: on line-3.6b
(session 16's profile, one H200) the GEMVs reached 71 % of the bandwidth and their 90
split-K reductions per token took 6 % of the step. Here each program computes a few output
rows over the whole input (fine-grained rows fill the GPU without splitting the sum), in
float32, with the bias added in the same kernel. Measured (docs/benchmarks.md, session 25):
line-3.6b's layers at 87 % of an H200's bandwidth; whole replies 1.10x (line-3.6b, stablelm-
beta-7b, novel-gptj-6b) and 1.18x (gemma-3-270m) the cuBLAS step.

:func:`use_gemv` switches the class of a model's plain bf16/fp16 ``nn.Linear`` layers (not the
output head, which cuBLAS already reads at ~98 %) to :class:`GemvLinear`: one-row CUDA inputs
outside autograd run :func:`gemv` (a torch custom op, opaque to inductor, captured by the
decoder's CUDA graph; one launch configuration per shape, :mod:`serifu.accel.gemv_tiles`, so
that every process sums in the same order); anything else (prompts, training, the CPU) is
``nn.Linear``'s own forward. :func:`drop_gemv` switches back.

Folding (``use_gemv(model, fold=True)``, the decoder's default): where a decoder layer's input
norm is read only by linear layers (``NORM_READERS``: GPT-NeoX, GPT-J, Llama, Gemma 3), each of
them normalises its one-row input itself and the norm module passes its input through; where
an MLP's activation reads only its first layer (``ACT_READERS``: GPT-NeoX, GPT-J), that layer
applies it. A reply step then runs two or three kernels fewer per layer (the norms' one-block
reductions, ~2.8 us each on an H200, and the activation): 1.05x on line-3.6b (64.6 % of the
roofline) and gemma-3-270m, 1.00x on stablelm-beta-7b and novel-gptj-6b (one H200, session
26). Inputs the kernel does not serve run the norm's and activation's own forwards, so the
model computes what it did. The uint4 GEMV's layers (:class:`serifu.accel.uint4_gemv.Uint4Linear`,
session 28) take folded norms and activations the same way (:class:`Foldable`).

Fusing (``use_gemv(model, fuse=True)``; the decoder's by default since session 31,
``SERIFU_GEMV_FUSE=0`` turns it off): sibling layers that read the same input (q, k and v;
gate and up) run as one GEMV over their concatenated weights, their weights views of it
(:mod:`serifu.accel.gemv_fuse`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from serifu.accel.gemv_fuse import Sibling

# the kernel's codes (serifu.accel.gemv_kernels): norms folded into a layer's input ...
LAYER, RMS, RMS_PLUS_ONE = 1, 2, 3  # LayerNorm; Llama's RMSNorm; Gemma's, (1 + weight)
NORM_KINDS = {
    "LayerNorm": LAYER,
    "LlamaRMSNorm": RMS,
    "Gemma3RMSNorm": RMS_PLUS_ONE,
}
# ... and activations folded into its output: GELU (erf), GELU's tanh approximation, SiLU
# (SiLU only as a gated MLP's, GLU below)
GELU, GELU_TANH, SILU = 1, 2, 3
ACT_KINDS = {
    "GELUActivation": GELU,
    "NewGELUActivation": GELU_TANH,
    "GELUTanh": GELU_TANH,
    "PytorchGELUTanh": GELU_TANH,
    "SiLUActivation": SILU,
    "SiLU": SILU,
}
# decoder-layer class: (its norm, the linear layers that alone read the norm's output), ...
_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
NORM_READERS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "GPTNeoXLayer": (
        ("input_layernorm", ("attention.query_key_value",)),
        ("post_attention_layernorm", ("mlp.dense_h_to_4h",)),
    ),
    "GPTJBlock": (("ln_1", ("attn.q_proj", "attn.k_proj", "attn.v_proj", "mlp.fc_in")),),
    "LlamaDecoderLayer": (
        ("input_layernorm", _QKV),
        ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
    ),
    "Gemma3DecoderLayer": (
        ("input_layernorm", _QKV),
        ("pre_feedforward_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
    ),
}
# decoder-layer class: (an MLP's first linear layer, the activation that alone reads it)
ACT_READERS = {
    "GPTNeoXLayer": ("mlp.dense_h_to_4h", "mlp.act"),
    "GPTJBlock": ("mlp.fc_in", "mlp.act"),
}


@torch.no_grad()  # else the sums hold an autograd graph that keeps ``weight`` alive
def folded_sums(weight: torch.Tensor, norm: int, norm_weight: Any, norm_bias: Any) -> torch.Tensor:
    """float32 ``[2, out]``: the rows of ``weight`` summed against the norm's weight (``1 +
    weight`` for Gemma) and against its bias (0 without one). They do not change with the
    input, so the kernel's loop sums only ``w g x`` and the end subtracts ``mean * W g``."""
    out = torch.zeros(2, weight.shape[0], dtype=torch.float32, device=weight.device)
    g = norm_weight.float() + (1.0 if norm == RMS_PLUS_ONE else 0.0)
    for i in range(0, weight.shape[0], 4096):  # a float32 copy of 4,096 rows at a time
        rows = weight[i : i + 4096].float()
        out[0, i : i + 4096] = rows @ g
        if norm_bias is not None:
            out[1, i : i + 4096] = rows @ norm_bias.float()
    return out


@torch.library.custom_op("serifu::gemv", mutates_args=())
def gemv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    norm: int = 0,
    norm_weight: torch.Tensor | None = None,
    norm_sums: torch.Tensor | None = None,
    eps: float = 0.0,
    act: int = 0,
    glu: int = 0,
    in_glu: int = 0,
) -> torch.Tensor:
    """``act(F.linear(norm(x), weight, bias))`` for an ``x`` of one row (any leading dims of
    size 1); with a ``norm``, ``norm_sums`` is :func:`folded_sums`'s; with ``glu`` (an
    activation code) the weight is a gated MLP's gate and up stacked, and the result
    ``glu(gate) * up`` (half the rows); with ``in_glu`` (one) ``x`` is a gated MLP's gate and
    up (twice the weight's width) and the product's input ``in_glu(gate) * up``. On CUDA the
    Triton kernel; elsewhere the same in PyTorch (the kernel's reference): a folded norm's
    input normalised in float32, not rounded before the product, its bias as
    ``norm_sums[1]``."""
    rows = weight.shape[0] // (2 if glu else 1)
    if x.is_cuda:
        from serifu.accel import gemv_kernels

        out = torch.empty(*x.shape[:-1], rows, device=x.device, dtype=x.dtype)
        gemv_kernels.launch(
            x.reshape(-1).contiguous(), weight, bias, out.view(-1), norm, norm_weight,
            norm_sums, eps, act, glu, pdl_on(x.device), in_glu,
        )  # fmt: skip
        return out
    if in_glu:
        x = gated_product(x, in_glu)
    if norm:
        assert norm_weight is not None and norm_sums is not None
        xf, g = x.float(), norm_weight.float()
        if norm == LAYER:
            xf = xf - xf.mean(-1, keepdim=True)
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        xf = xf * (1.0 + g if norm == RMS_PLUS_ONE else g)
        y = torch.nn.functional.linear(xf, weight.float()) + norm_sums[1]
        y = (y + bias.float() if bias is not None else y).to(x.dtype)
    else:
        y = torch.nn.functional.linear(x, weight, bias)
    if glu:  # the model's own order: act(gate) * up, each in its dtype
        return activation(y[..., :rows], glu) * y[..., rows:]
    return activation(y, act)


def activation(y: torch.Tensor, act: int) -> torch.Tensor:
    """An activation code's function (0: none) in PyTorch."""
    if act == GELU:
        return torch.nn.functional.gelu(y)
    if act == GELU_TANH:
        return torch.nn.functional.gelu(y, approximate="tanh")
    if act == SILU:
        return torch.nn.functional.silu(y)
    return y


def gated_product(x: torch.Tensor, act: int) -> torch.Tensor:
    """A gated MLP's ``act(gate) * up`` from its gate and up halves side by side, in the
    model's own order (each in its dtype)."""
    half = x.shape[-1] // 2
    return activation(x[..., :half], act) * x[..., half:]


@gemv.register_fake
def _(
    x: torch.Tensor, weight: torch.Tensor, bias: Any, norm: int = 0, norm_weight: Any = None,
    norm_sums: Any = None, eps: float = 0.0, act: int = 0, glu: int = 0, in_glu: int = 0,
) -> torch.Tensor:  # fmt: skip
    # the op's own parameters by name: read by position, a folded act was taken for glu
    return x.new_empty(*x.shape[:-1], weight.shape[0] // (2 if glu else 1))


_PDL: bool | None = None  # None: SERIFU_GEMV_PDL decides


def set_pdl(on: bool | None) -> None:
    """Launch the GEMVs as programmatic dependents of the kernel before them (``True``), not
    (``False``), or as ``SERIFU_GEMV_PDL`` says (``None``; default off until timed on a GPU):
    each program lets the next kernel start once all of it has started, and reads its first
    weights before waiting for its input. Applies to launches from now on (a decoder's graphs
    keep the launches they captured)."""
    global _PDL
    _PDL = on


def pdl_on(device: torch.device) -> bool:
    """Whether this launch on ``device`` is a programmatic dependent one (sm90 and newer)."""
    on = _PDL if _PDL is not None else os.environ.get("SERIFU_GEMV_PDL", "0") == "1"
    if not on or device.type != "cuda":
        return False
    return _pdl_capable(device.index if device.index is not None else torch.cuda.current_device())


@functools.cache
def _pdl_capable(index: int) -> bool:
    from serifu.accel import gemv_kernels

    return gemv_kernels.HAS_PDL and torch.cuda.get_device_capability(index) >= (9, 0)


class SharedNorm:
    """A folded norm's own forward, for the inputs the kernel does not serve (prompts,
    batches): run once per input for the ``readers`` layers that read it in turn (q, k and v
    read the same), and forgotten once they all have (so no later pass can see it); under
    ``torch.compile`` each reader runs it (inductor merges the repeats itself)."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], readers: int):
        self.forward = forward
        self.readers = readers
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None
        self.left = 0  # readers still to read self.last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return self.forward(x)
        if self.last is None or self.last[0] is not x:
            self.last, self.left = (x, self.forward(x)), self.readers
        out = self.last[1]
        self.left -= 1
        if self.left <= 0:
            self.last = None
        return out


class Foldable:
    """A layer :func:`_fold` can fold a norm and an activation into (:class:`GemvLinear`,
    :class:`serifu.accel.uint4_gemv.Uint4Linear`): what it sets (the class defaults mean
    nothing folded), and the forward of inputs the kernel does not serve."""

    _norm = 0  # folded in: the kernel's codes and tensors, and the modules' own forwards
    _norm_weight: torch.Tensor | None = None
    _norm_sums: torch.Tensor | None = None
    _eps = 0.0
    _act = 0
    _norm_forward: SharedNorm | None = None
    _act_forward: Callable[[torch.Tensor], torch.Tensor] | None = None

    def folded(self) -> tuple[int, torch.Tensor | None, torch.Tensor | None, float, int]:
        """The kernel's arguments after the layer's own: norm, its weight and sums, eps, act."""
        return self._norm, self._norm_weight, self._norm_sums, self._eps, self._act

    def forward_unfolded(
        self, x: torch.Tensor, linear: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``linear`` between the folded norm's and activation's own forwards."""
        if self._norm_forward is not None:
            x = self._norm_forward(x)
        y = linear(x)
        return self._act_forward(y) if self._act_forward is not None else y

    def fold_weight(self) -> torch.Tensor:
        """The weight [out, in] the kernel multiplies by (for :func:`folded_sums`)."""
        raise NotImplementedError


_CPU_KERNEL = False
"""Tests: one-row CPU inputs run :func:`gemv` too (its PyTorch reference), as CUDA ones do."""


class ResidualSlot:
    """A residual its GEMV layer adds as its bias on its next one-row call, then forgets
    (:mod:`serifu.accel.residual_fold`: set by the decoder layer just before)."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None


class GemvLinear(Foldable, torch.nn.Linear):
    """``nn.Linear`` whose one-row CUDA inputs under ``no_grad`` run :func:`gemv`, with the
    norm before it and the activation after it when those were folded in; a fused sibling's
    (:mod:`serifu.accel.gemv_fuse`) as its group's one GEMV."""

    _sibling: Sibling | None = None  # set by serifu.accel.gemv_fuse.fuse_siblings
    _residual: ResidualSlot | None = None  # set by serifu.accel.residual_fold.fold_residuals

    def forward(self, x: torch.Tensor, in_glu: int = 0) -> torch.Tensor:
        """``in_glu`` (an activation code; :mod:`serifu.accel.gemv_fuse`'s gated MLPs): ``x``
        is a gate and an up half, the layer's input ``in_glu(gate) * up``."""
        if (x.is_cuda or _CPU_KERNEL) and x.numel() == x.shape[-1] and not torch.is_grad_enabled():
            if self._sibling is not None and not in_glu:
                return self._sibling(self, x)
            slot = self._residual
            bias: torch.Tensor | None = self.bias
            if slot is not None and slot.value is not None:  # the layer's add, as the bias
                residual, slot.value = slot.value, None
                bias = residual.reshape(-1).contiguous()
            return gemv(x, self.weight, bias, *self.folded(), 0, in_glu)  # glu=0
        if in_glu:
            x = gated_product(x, in_glu)
        return self.forward_unfolded(x, super().forward)

    def fold_weight(self) -> torch.Tensor:
        return self.weight


_FOLDED = ("_norm", "_norm_weight", "_norm_sums", "_eps", "_act", "_norm_forward", "_act_forward")
"""What :func:`_fold` sets on a :class:`Foldable` layer."""


class FoldedIn(torch.nn.Module):
    """A norm or activation folded into the :class:`Foldable` layers that alone read it:
    passes its input through (its parameters stay where they were)."""

    unfolded: type  # the module's own class

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _eligible(module: Any, head: Any) -> bool:
    w: Any = getattr(module, "weight", None)
    return (
        type(module) is torch.nn.Linear
        and module is not head
        and type(w) in (torch.nn.Parameter, torch.Tensor)  # not None, nor a quantised subclass
        and w.dtype in (torch.bfloat16, torch.float16)
        and w.stride(-1) == 1
    )


# the start-up check's products: plain with a bias; each norm and activation folded in
CHECK_CASES: tuple[dict[str, Any], ...] = (
    {},
    {"norm": LAYER, "act": GELU, "norm_bias": True},
    {"norm": RMS},
    {"norm": RMS_PLUS_ONE, "act": GELU_TANH},
)


def check_kwargs(
    case: dict[str, Any], weight: torch.Tensor, norm_weight: Any, norm_bias: Any, device: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``CHECK_CASES`` case as the op's folded arguments after the layer's own (norm, its
    weight and :func:`folded_sums` over ``weight``, eps, act): on the CPU and on ``device``."""
    kw: dict[str, Any] = {"norm": case.get("norm", 0), "eps": 1e-5, "act": case.get("act", 0)}
    if kw["norm"]:
        bias = norm_bias if case.get("norm_bias") else None
        kw |= {
            "norm_weight": norm_weight,
            "norm_sums": folded_sums(weight, kw["norm"], norm_weight, bias),
        }
    on = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    return kw, on


@functools.cache
def kernel_error(device: str) -> str | None:
    """Why the kernel cannot serve on ``device`` (None: small products, plain and with each
    norm and activation folded in, ran and matched the op's PyTorch reference on the CPU).
    Checked once per device, so that a GPU or Triton release it does not run on keeps cuBLAS."""
    from serifu.accel.kernel_check import kernel_error as check

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        got, ref = [], []
        g = torch.Generator().manual_seed(0)
        for case in CHECK_CASES:
            shapes = ((1, 1, 300), (37, 300), (37,), (300,), (300,))
            x, w, b, nw, nb = (torch.randn(*s, generator=g).to(torch.bfloat16) for s in shapes)
            kw, on = check_kwargs(case, w, nw, nb, device)
            got.append(gemv(x.to(device), w.to(device), b.to(device), **on).float().cpu())
            ref.append(gemv(x, w, b, **kw).float())  # the op off CUDA: its reference
        return torch.cat(got, -1), torch.cat(ref, -1)

    return check(run, atol=5e-2, rtol=2e-2)


def _fold(model: Any) -> int:
    """Folds each decoder layer's norms and MLP activation (``NORM_READERS``, ``ACT_READERS``)
    into the :class:`Foldable` layers (GEMV, uint4 GEMV) that alone read them; returns how many
    modules."""
    folded = 0
    for layer in model.modules():
        kind = type(layer).__name__
        for norm_name, reader_names in NORM_READERS.get(kind, ()):
            norm = layer.get_submodule(norm_name)
            readers = [layer.get_submodule(r) for r in reader_names]
            code = NORM_KINDS.get(type(norm).__name__)
            weight = getattr(norm, "weight", None)
            eps = getattr(norm, "eps", getattr(norm, "variance_epsilon", None))
            if code is None or weight is None or eps is None:
                continue
            if not all(isinstance(r, Foldable) for r in readers):  # LoRA-wrapped, NF4...
                continue
            shared = SharedNorm(functools.partial(type(norm).forward, norm), len(readers))
            for r in readers:
                sibling = getattr(r, "_sibling", None)
                if sibling is not None:  # fused before this norm was folded: unfused
                    sibling.group.unfuse()
                sums = folded_sums(r.fold_weight(), code, weight, getattr(norm, "bias", None))
                r.__dict__.update(
                    _norm=code, _norm_weight=weight, _norm_sums=sums, _eps=float(eps),
                    _norm_forward=shared,
                )  # fmt: skip
            _swap(norm)
            folded += 1
        if kind in ACT_READERS:
            linear_name, act_name = ACT_READERS[kind]
            linear, act = layer.get_submodule(linear_name), layer.get_submodule(act_name)
            code = ACT_KINDS.get(type(act).__name__)
            if code is not None and isinstance(linear, Foldable):
                forward = functools.partial(type(act).forward, act)
                linear.__dict__.update(_act=code, _act_forward=forward)
                _swap(act)
                folded += 1
    return folded


@functools.cache
def swapped_class(mixin: type, cls: type, own: str = "unfolded") -> type:
    """``cls`` with ``mixin``'s methods first and ``own`` naming ``cls`` (to call its forward
    and swap back): the class a module is switched to in place (a folded norm passing its
    input through, :mod:`serifu.accel.gemv_fuse`'s gated MLP, :mod:`serifu.accel.residual_fold`'s
    layer); one class per pair."""
    return type(f"{mixin.__name__}{cls.__name__}", (mixin, cls), {own: cls, "swapped_from": cls})


def own_class(module: Any) -> type:
    """The class ``module`` had before any :func:`swapped_class` switched it (whitelists
    name the model's own classes: a folded Llama attention is still a ``LlamaAttention``)."""
    cls: type = type(module)
    while "swapped_from" in vars(cls):
        cls = vars(cls)["swapped_from"]
    return cls


def swap_whitelisted(
    model: Any,
    mixin: type,
    names: Sequence[str],
    ready: Callable[[Any], bool],
    prepare: Callable[[Any], None] | None = None,
) -> int:
    """Switches each of the model's modules whose own class is named in ``names`` and that is
    ``ready`` to ``mixin`` (:func:`swapped_class`; ``prepare`` runs on it first); returns how
    many modules run ``mixin`` then (an earlier call's included)."""
    swapped = 0
    for module in model.modules():
        if isinstance(module, mixin):
            swapped += 1
        elif own_class(module).__name__ in names and ready(module):
            if prepare is not None:
                prepare(module)
            cls: type = type(module)
            module.__class__ = swapped_class(mixin, cls)
            swapped += 1
    return swapped


def swap_back(model: Any, mixin: type) -> None:
    """The model's modules that :func:`swap_whitelisted` switched to ``mixin`` back to their
    own classes."""
    for module in model.modules():
        if isinstance(module, mixin):
            module.__class__ = vars(type(module))["swapped_from"]


def _swap(module: torch.nn.Module) -> None:
    cls: type = type(module)
    module.__class__ = swapped_class(FoldedIn, cls)


def use_gemv(
    model: Any,
    fold: bool = False,
    fuse: bool = False,
    glu: bool | str = False,
    residual: bool = False,
) -> int:
    """Switches the model's plain half-precision linear layers (not its output head) to
    :class:`GemvLinear`, with ``fold`` their layers' norms and MLP activations folded in, with
    ``fuse`` sibling layers fused (:func:`serifu.accel.gemv_fuse.fuse_siblings`; groups an
    earlier call fused stay fused, as folded norms stay folded, unless a norm is folded into
    them now), with ``fuse`` and ``glu`` a gated MLP's product computed in its gate/up GEMV
    (``glu="down"``: in its down projection's),
    with ``residual`` a Llama layer's residual adds inside its ``o_proj`` and ``down_proj``
    GEMVs (:func:`serifu.accel.residual_fold.fold_residuals`); returns how many layers the
    model now has on the GEMV (those an earlier call switched included; 0, with a one-line
    notice, on a device where :func:`kernel_error` found the kernel failing). Like a decoder's
    captured graphs, folding assumes the model's modules stay as they are (no adapter injected
    into a folded layer): :func:`drop_gemv` first."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    layers = [m for m in model.modules() if _eligible(m, head)]
    error = kernel_error(str(layers[0].weight.device)) if layers else None
    if error is not None:
        print(f"note: replies use cuBLAS (the Triton GEMV failed: {error})", file=sys.stderr)
        return 0
    for m in layers:
        m.__class__ = GemvLinear
    if fold:
        _fold(model)
    if fuse:  # after folding: a group's GEMV takes its siblings' folded norm
        from serifu.accel.gemv_fuse import fuse_siblings

        fuse_siblings(model, glu=glu)
    if residual:
        from serifu.accel.residual_fold import fold_residuals

        fold_residuals(model)
    return sum(type(m) is GemvLinear for m in model.modules())


def folded_in(model: Any) -> int:
    """How many norms and activations are folded into the model's GEMV layers."""
    return sum(isinstance(m, FoldedIn) for m in model.modules())


def drop_gemv(model: Any) -> int:
    """Switches :class:`GemvLinear` layers back to ``nn.Linear`` (fused siblings each on its
    own weight again, a view of the group's), folded norms and activations and decoder layers
    folding their residuals back to their classes, and unfolds the uint4 GEMV's layers;
    returns how many GEMV layers."""
    from serifu.accel.gemv_fuse import drop_glu
    from serifu.accel.residual_fold import drop_residuals

    drop_glu(model)
    drop_residuals(model)
    swap_back(model, FoldedIn)
    for m in model.modules():
        if isinstance(m, Foldable):  # the uint4 GEMV's layers stay, unfolded
            for name in _FOLDED:
                m.__dict__.pop(name, None)
    layers: list[Any] = [m for m in model.modules() if type(m) is GemvLinear]
    for m in layers:
        m.__dict__.pop("_sibling", None)
        m.__class__ = torch.nn.Linear
    return len(layers)
