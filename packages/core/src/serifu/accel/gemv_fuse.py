"""Sibling GEMV layers that read the same input, run as one GEMV over their stacked weights.

At batch 1 each linear layer of a reply step is one :func:`serifu.accel.gemv.gemv` launch that
streams its weight once: a 32-layer Llama's step runs 224 (q, k, v, o, gate, up, down per
layer), each with a launch gap and a tail where its last thread blocks leave most of the GPU
idle (stablelm-beta-7b at 78 % of an H100's roofline). Attention's q, k and v read the same
input, as do a gated MLP's gate and up: one GEMV over their stacked rows reads the same bytes
in 4 launches a layer instead of 7 (224 -> 128), with one tail where there were three.

:func:`fuse_siblings` concatenates each group's weights (``SIBLINGS``, a whitelist: parent
module class -> its layers in the order its forward calls them on one input) into one
``[sum N, K]`` tensor and makes each layer's ``weight`` a view of its rows: memory does not
grow (the separate tensors are freed) and whatever else reads a layer's weight (prompts,
LoRA's base layer, quantising after :func:`~serifu.accel.gemv.drop_gemv`) sees the same
values. Only the one-row kernel path is fused: the first sibling (the leader) runs the
group's GEMV (the siblings' folded norm, its sums concatenated) and keeps input and output on
the group; a follower called on that same input object returns its slice of the output,
on any other input its own product (a reordered or partial call is slower, never wrong); the
last sibling forgets them. Prompts, batches, autograd and the CPU run each layer as before.
Under ``torch.compile`` the group's attributes are side effects Dynamo tracks within the
traced forward (set and cleared again: nothing is left to write back after the graph).

The decoder fuses by default since session 31 (``SERIFU_GEMV_FUSE=0``: not): +1.4 to +4.4 %
tok/s in six timed pairs on stablelm-beta-7b and novel-gptj-6b (one H100, one H200).

With ``glu`` (``fuse_siblings(model, glu=True)``; the decoder's with ``SERIFU_GEMV_GLU=1``,
opt-in: on an H200 its gate/up GEMV grew by more than the product kernel it saves) a gated MLP
(``GLU_MLPS``: ``down(act(gate(x)) * up(x))``, SiLU or GELU) whose gate and up are fused runs
its one-row inputs as two GEMVs: the fused one writes ``act(gate) * up`` itself (each program
sums rows ``j`` of both halves), so the product of the two needs no kernel of its own; then
``down``. With ``glu="down"`` (``SERIFU_GEMV_GLU=down``, session 34) the gate/up GEMV stays as
it is and ``down``'s GEMV computes ``act(gate) * up`` as it reads its input (``in_glu``): the
same kernel saved, no GEMV made wider. Opt-in: in session 35 (one H100) each down GEMV's
programs computing the product over the whole input again cost stablelm-beta-7b's GEMVs 87 us
a token, against 45 us for the product's own kernel (-0.4 % tok/s in fresh processes). It
rounds ``act(gate)`` and the product as the eager model does (an inductor-compiled product
rounds once), so on random weights a few greedy tokens can differ from the compiled step's.
Its other inputs run the MLP's own forward.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

import torch

from serifu.accel import gemv as gemv_module
from serifu.accel.gemv import ACT_KINDS, SILU, GemvLinear, gemv, own_class, swapped_class

# parent module class: its sibling groups, each in the order its forward calls them on one
# input (the first runs the GEMV); GPT-NeoX's query_key_value is fused already
_QKV = ("q_proj", "k_proj", "v_proj")
_GATE_UP = ("gate_proj", "up_proj")  # down_proj(act(gate_proj(x)) * up_proj(x))
SIBLINGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "LlamaAttention": (_QKV,),
    "LlamaMLP": (_GATE_UP,),
    "Gemma3Attention": (_QKV,),
    "Gemma3MLP": (_GATE_UP,),
    "GPTJAttention": (_QKV,),
}
GLU_MLPS = ("LlamaMLP", "Gemma3MLP")
"""Gated MLPs whose forward is ``down_proj(act_fn(gate_proj(x)) * up_proj(x))``."""


class FusedGroup:
    """Sibling layers' stacked weight, bias and folded norm, and the leader's last input and
    output while the followers read them."""

    def __init__(
        self, layers: list[GemvLinear], weight: torch.Tensor, bias: torch.Tensor | None
    ) -> None:
        lead = layers[0]
        self.layers = layers
        self.weight, self.bias = weight, bias
        # the kernel reads norm_sums as [2, N] contiguous: the group's own, not views of the
        # layers' (which their own products still take); all or none have them (_fusable)
        sums = [m._norm_sums for m in layers if m._norm_sums is not None]
        norm_sums = torch.cat(sums, 1) if sums else None
        self.folded = (lead._norm, lead._norm_weight, norm_sums, lead._eps, 0)
        self.x: torch.Tensor | None = None
        self.out: torch.Tensor | None = None
        self.glu = 0  # a gated MLP's activation code: its GEMV writes act(gate) * up
        self.glu_down = 0  # ... or down's GEMV reads this GEMV's output as act(gate) * up

    def unfuse(self) -> None:
        """Each layer back on its own product (its weight stays a view of the group's)."""
        for m in self.layers:
            m.__dict__.pop("_sibling", None)
        self.x = self.out = None
        self.glu = self.glu_down = 0


class GluMLP(torch.nn.Module):
    """A gated MLP (``GLU_MLPS``) whose one-row inputs run its fused gate/up GEMV with the
    gate's activation and the product in it, then ``down_proj`` (``glu``); or the gate/up
    GEMV as it is, then ``down_proj``'s computing the product from its output (``glu_down``);
    other inputs (prompts, batches, autograd, an unfused MLP) its own forward."""

    unfused: Any  # the MLP's own class

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sibling = _gate_sibling(self)
        if (
            sibling is not None
            and (sibling.group.glu or sibling.group.glu_down)
            and (x.is_cuda or gemv_module._CPU_KERNEL)
            and x.numel() == x.shape[-1]
            and not torch.is_grad_enabled()
        ):
            g = sibling.group
            down: Any = self.down_proj
            if g.glu_down:  # [gate, up] for down's GEMV to combine as it reads them
                return down(gemv(x, g.weight, g.bias, *g.folded), in_glu=g.glu_down)
            return down(gemv(x, g.weight, g.bias, *g.folded, glu=g.glu))
        return self.unfused.forward(self, x)


def _gate_sibling(mlp: Any) -> Sibling | None:
    sibling: Sibling | None = getattr(getattr(mlp, "gate_proj", None), "_sibling", None)
    return sibling


def _use_glu(mlp: Any, down: bool = False) -> bool:
    """Turns on the gated product for ``mlp`` (its gate and up fused, in that order, its
    activation one the kernel has) inside its fused GEMV, or with ``down`` inside its
    ``down_proj``'s (a plain GEMV layer); returns whether it did."""
    gate, up = getattr(mlp, "gate_proj", None), getattr(mlp, "up_proj", None)
    sibling = _gate_sibling(mlp)
    code = ACT_KINDS.get(type(getattr(mlp, "act_fn", None)).__name__, 0)
    if sibling is None or not code or sibling.group.layers != [gate, up]:
        return False
    if gate.weight.shape != up.weight.shape:  # type: ignore[union-attr]
        return False
    proj = getattr(mlp, "down_proj", None)
    if down and not (
        type(proj) is GemvLinear
        and proj._norm == 0
        and proj._sibling is None
        and proj.weight.shape[1] == gate.weight.shape[0]  # type: ignore[union-attr]
        and glu_down_error(str(proj.weight.device)) is None
    ):
        return False
    sibling.group.glu, sibling.group.glu_down = (0, code) if down else (code, 0)
    if not isinstance(mlp, GluMLP):
        cls: type = type(mlp)
        mlp.__class__ = swapped_class(GluMLP, cls, "unfused")
    return True


@functools.cache
def glu_down_error(device: str) -> str | None:
    """Why the GEMV cannot compute its input as a gated product on ``device`` (None: a small
    product ran and matched the op's PyTorch reference; with a one-line notice otherwise, and
    the MLPs keep their product kernel). Checked once per device."""
    from serifu.accel.kernel_check import kernel_error as check

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 1, 600, generator=g).to(torch.bfloat16)
        w = torch.randn(37, 300, generator=g).to(torch.bfloat16)
        got = gemv(x.to(device), w.to(device), None, in_glu=SILU).float().cpu()
        return got, gemv(x, w, None, in_glu=SILU).float()

    error = check(run, atol=5e-2, rtol=2e-2)
    if error is not None:
        print(f"note: gated MLPs keep their product kernel ({error})", file=sys.stderr)
    return error


def drop_glu(model: Any) -> None:
    """Gated MLPs back to their own classes (their fused groups' gated product off)."""
    for m in model.modules():
        if isinstance(m, GluMLP):
            sibling = _gate_sibling(m)
            if sibling is not None:
                sibling.group.glu = sibling.group.glu_down = 0
            m.__class__ = m.unfused


class Sibling:
    """One layer's place in its :class:`FusedGroup`: its output rows ``lo:hi``."""

    def __init__(self, group: FusedGroup, index: int, lo: int, hi: int) -> None:
        self.group, self.index, self.lo, self.hi = group, index, lo, hi
        self.last = index == len(group.layers) - 1

    def __call__(self, layer: GemvLinear, x: torch.Tensor) -> torch.Tensor:
        """``layer``'s one-row product (what :class:`GemvLinear` would run on its own)."""
        g = self.group
        out: torch.Tensor | None = None
        if self.index == 0:
            out = gemv(x, g.weight, g.bias, *g.folded)
            g.x, g.out = x, out
        elif x is g.x:
            out = g.out
        if self.last:  # nothing kept past the group's calls
            g.x = g.out = None
        if out is None:  # not the input the leader served
            return gemv(x, layer.weight, layer.bias, *layer.folded())
        return out[..., self.lo : self.hi]


def _fusable(layers: list[Any]) -> bool:
    """GEMV layers on one input width, dtype and device, each with a bias or none (a group
    where only some have one stays unfused), one folded norm and no folded activation."""
    if not all(type(m) is GemvLinear for m in layers):
        return False
    lead, w = layers[0], layers[0].weight
    return all(
        m.weight.dim() == 2
        and m.weight.shape[1] == w.shape[1]
        and m.weight.dtype == w.dtype
        and m.weight.device == w.device
        and (m.bias is None) == (lead.bias is None)
        and m._norm == lead._norm
        and m._norm_weight is lead._norm_weight
        and m._eps == lead._eps
        and (m._norm_sums is None) == (lead._norm_sums is None)
        and m._act == 0
        for m in layers
    )


def _stacked(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``parts`` concatenated along rows: without a copy where they already are consecutive
    rows of one tensor (fused before: drop_gemv and use_gemv again keep the same memory)."""
    first = parts[0]
    storage, offset = first.untyped_storage(), first.storage_offset()
    rows = sum(p.shape[0] for p in parts)
    adjacent = True
    for p in parts:
        adjacent = adjacent and (
            p.is_contiguous()
            and p.untyped_storage().data_ptr() == storage.data_ptr()
            and p.storage_offset() == offset
        )
        offset += p.numel()
    if not adjacent:
        return torch.cat([p.detach() for p in parts])
    out = torch.empty(0, dtype=first.dtype, device=first.device)
    return out.set_(storage, first.storage_offset(), (rows, *first.shape[1:]), first.stride())


def _fuse(layers: list[GemvLinear]) -> None:
    """Stacks the layers' weights (and biases), each layer's now a view of its rows."""
    for m in layers:  # a group fused before some norm was folded into part of it
        if m._sibling is not None:
            m._sibling.group.unfuse()
    with torch.no_grad():
        weight = _stacked([m.weight for m in layers])
        biases = [m.bias for m in layers if m.bias is not None]
        bias = _stacked(biases) if biases else None
        group = FusedGroup(layers, weight, bias)
        lo = 0
        for i, m in enumerate(layers):
            hi = lo + m.weight.shape[0]
            m.weight = torch.nn.Parameter(weight[lo:hi], requires_grad=m.weight.requires_grad)
            if bias is not None and m.bias is not None:
                m.bias = torch.nn.Parameter(bias[lo:hi], requires_grad=m.bias.requires_grad)
            m._sibling = Sibling(group, i, lo, hi)
            lo = hi


def fuse_siblings(model: Any, glu: bool | str = False) -> int:
    """Fuses the model's sibling GEMV layers (``SIBLINGS``) where :func:`_fusable`, with
    ``glu`` each gated MLP's product into its gate/up GEMV (:class:`GluMLP`), with
    ``glu="down"`` into its down projection's; returns how many groups are fused (an earlier
    call's, kept as they are, included)."""
    fused = 0
    for parent in model.modules():
        kind = own_class(parent).__name__  # (a GluMLP's, a rope-folded attention's own)
        for names in SIBLINGS.get(kind, ()):
            layers: list[Any] = [getattr(parent, n, None) for n in names]
            sibling = getattr(layers[0], "_sibling", None)
            kept = sibling.group.layers if sibling is not None else []
            if len(kept) == len(layers) and all(a is b for a, b in zip(kept, layers, strict=True)):
                fused += 1  # an earlier call's group (the graphs it was captured in read it)
            elif _fusable(layers):
                _fuse(layers)
                fused += 1
        if glu and kind in GLU_MLPS:
            _use_glu(parent, down=glu == "down")
    return fused


def glu_mlps(model: Any) -> int:
    """How many gated MLPs run their product inside their fused gate/up GEMV or their down
    projection's."""
    siblings = [_gate_sibling(m) for m in model.modules() if isinstance(m, GluMLP)]
    return sum(
        1
        for sibling in siblings
        if sibling is not None and (sibling.group.glu or sibling.group.glu_down)
    )


def fused_groups(model: Any) -> int:
    """How many sibling groups of the model run as one GEMV each."""
    groups = {
        id(m._sibling.group)
        for m in model.modules()
        if type(m) is GemvLinear and m._sibling is not None
    }
    return len(groups)
