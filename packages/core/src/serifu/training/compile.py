"""Regional ``torch.compile`` of the decoder layers for training (``train.compile``).

A small model's training step (gemma-3-270m: ~7,000 kernel launches per step) is bound
by launches, not by math. Compiling each decoder layer with inductor fuses its
elementwise work (norms, rotary embedding, activation, residuals, LoRA's scaling) into
few kernels, forward and backward. Only the repeated layer is compiled (regional
compilation, as transformers and accelerate recommend): one compiled function serves
every layer of the stack, so the compile time is that of a layer or two (a sliding and a
global attention layer), not of the whole model.

What it has to live with:
- bitsandbytes' 4-bit matmuls are custom ops and LoRA is plain modules: both trace.
- The packed rows' boundaries (``cu_seq_lens_*``, ``max_length_*``) change every step:
  the layer is compiled with ``dynamic=True``, so token counts and the longest example
  stay symbolic (no recompile per step; a sliding-window layer guards once on
  ``longest > window``).
- Gradient checkpointing stays outside the compiled region: the layer's own forward is
  compiled and the checkpoint (non-reentrant) recomputes it, so a graph break inside
  the layer (e.g. the CPU's mask path) cannot silently turn compilation off.
- Without gradients (validation) the layer runs eagerly: no second compile for it.

``"auto"`` compiles where it pays: a CUDA device, a small model
(:data:`AUTO_MAX_PARAMS`) and a run long enough to earn the compile time back
(:data:`AUTO_MIN_STEPS`); never on the CPU, where inductor's C++ compile takes longer
than a short run saves. ``"on"`` insists (any device with a working compiler), ``"off"``
never. Undo with :func:`uncompile` (the trainer's kernel restore point also does it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, Literal

from serifu.errors import SerifuError

SETTINGS = ("auto", "on", "off")
AUTO_MAX_PARAMS = 1_000_000_000
"""``"auto"`` compiles models up to this many parameters (launch-bound steps)."""
AUTO_MIN_STEPS = 300
"""``"auto"`` compiles runs of at least this many micro-batches: compiling costs tens of
seconds once and saves a fraction of a (sub-second) step on each, so a short run is
faster eager (``bench/gpu/train_speed.py`` records ``break_even_steps`` per row)."""
BACKEND = "inductor"
RECOMPILE_LIMIT = 64
"""Compiled variants kept per layer function (layer kinds x guards; torch's default is 8)."""
_COMPILED: dict[Any, Any] = {}
"""One compiled function per layer class's forward, shared by every model in the process."""


@dataclass(frozen=True)
class CompileDecision:
    """Whether a run compiles its layers and why (training log, ``serifu.json``)."""

    compile: Literal["on", "off"]
    reason: str
    setting: str = "auto"
    layers: int = 0
    """Decoder layers compiled (after :func:`apply_compile`)."""
    layer_class: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    """After training: compile seconds, graphs, graph breaks, recompiles (:func:`compile_stats`)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    setting: str,
    *,
    device: str,
    n_params: int,
    compiler: str | None,
    steps: int | None = None,
    warm: bool = False,
) -> CompileDecision:
    """The policy from plain values; ``compiler``: why torch.compile cannot run (None: it
    can); ``steps``: the run's micro-batches (None: unknown, long enough); ``warm``: this
    process compiled the same layer before (for an earlier run), so compiling costs
    little and the step count does not matter."""
    if setting not in SETTINGS:
        raise SerifuError(
            f"train.compile must be one of {', '.join(repr(s) for s in SETTINGS)}, not {setting!r}"
        )
    if setting == "off":
        return CompileDecision("off", "set in the config", setting)
    if setting == "on":
        if compiler is not None:
            raise SerifuError(
                f"train.compile = 'on' cannot be used: {compiler}. Set train.compile to "
                "'auto' or 'off'"
            )
        return CompileDecision("on", "set in the config", setting)
    if not device.startswith("cuda"):
        why = f"auto: the model is on {device} (compiling pays on CUDA)"
        return CompileDecision("off", why, setting)
    if n_params > AUTO_MAX_PARAMS:
        return CompileDecision(
            "off",
            f"auto: {n_params / 1e9:.1f}B parameters; compiling pays on launch-bound small "
            f"models (up to {AUTO_MAX_PARAMS / 1e9:.1f}B)",
            setting,
        )
    if steps is not None and steps < AUTO_MIN_STEPS and not warm:
        why = (
            f"auto: {steps} steps; compiling pays from about {AUTO_MIN_STEPS} "
            "(it costs tens of seconds once)"
        )
        return CompileDecision("off", why, setting)
    if compiler is not None:
        return CompileDecision("off", f"auto: {compiler}", setting)
    length = "" if steps is None else f", {steps} steps"
    length += ", layer compiled earlier in this process" if warm else ""
    why = f"auto: CUDA, {n_params / 1e6:.0f}M parameters (launch-bound){length}"
    return CompileDecision("on", why, setting)


def compiler_unavailable(device: str) -> str | None:
    """Why inductor cannot compile for ``device`` here (None: it can)."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception as err:  # e.g. a Python version torch.compile does not support
        return f"torch.compile does not import ({type(err).__name__}: {str(err)[:200]})"
    if device.startswith("cuda"):
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            return "triton is not installed (inductor needs it on CUDA)"
        return None
    import shutil

    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "g++")):
        return "no C compiler found (inductor needs one on the CPU)"
    return None


def decoder_layers(model: Any) -> list[Any]:
    """The repeated decoder layers of ``model`` (plain or PEFT-wrapped)."""
    import torch

    from serifu.training.loss import causal_lm

    lm = causal_lm(model)
    found: list[Any] = []
    for module in lm.modules():  # the first ModuleList of one repeated layer class
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            kinds = {type(m) for m in module}
            name = type(module[0]).__name__
            if len(kinds) == 1 and ("Layer" in name or "Block" in name):
                found = list(module)
                break
    return found


def choose_compile(model: Any, setting: str, steps: int | None = None) -> CompileDecision:
    """Resolve ``train.compile`` for ``model`` where its weights are, for a run of
    ``steps`` micro-batches (see :func:`decide`)."""
    device = str(next(model.parameters()).device)
    if setting not in SETTINGS or setting == "off":
        return decide(setting, device=device, n_params=0, compiler=None)
    if not decoder_layers(model):
        return decide_no_layers(setting, model)
    n_params = counted_params(model)
    look = setting == "on" or device.startswith("cuda")
    compiler = compiler_unavailable(device) if look else None
    warm = _inner_forward(decoder_layers(model)[0]) in _COMPILED
    return decide(
        setting, device=device, n_params=n_params, compiler=compiler, steps=steps, warm=warm
    )


def counted_params(model: Any) -> int:
    """The weights ``model`` computes with (a 4-bit parameter packs two per element)."""
    return sum(p.numel() * (2 if _packed_4bit(p) else 1) for p in model.parameters())


def decide_no_layers(setting: str, model: Any) -> CompileDecision:
    why = f"no repeated decoder layers found in {type(model).__name__}"
    if setting == "on":
        raise SerifuError(f"train.compile = 'on' cannot be used: {why}; set it to 'off'")
    return CompileDecision("off", f"auto: {why}", setting)


def _packed_4bit(p: Any) -> bool:
    return type(p).__name__ == "Params4bit"


def _inner_forward(layer: Any) -> Callable[..., Any]:
    """The layer class's own forward: transformers (5.x) wraps it for gradient
    checkpointing, and :func:`_layer_forward` checkpoints around the compiled one instead."""
    forward = type(layer).forward
    code = getattr(forward, "__code__", None)
    if code is not None and code.co_name == "forward_with_checkpointing":
        return forward.__wrapped__
    return forward


def raise_recompile_limit(limit: int) -> None:
    """Dynamo's per-function recompile limit raised to at least ``limit``: past it Dynamo runs
    the function uncompiled, without failing."""
    import torch

    config = torch._dynamo.config  # ``cache_size_limit`` before torch 2.6
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(limit, getattr(config, name)))


def _compiled(inner: Callable[..., Any]) -> Any:
    import torch

    if inner not in _COMPILED:
        raise_recompile_limit(RECOMPILE_LIMIT)
        _COMPILED[inner] = torch.compile(inner, backend=BACKEND, dynamic=True)
    return _COMPILED[inner]


def _layer_forward(
    self: Any, *args: Any, _compiled: Any = None, _eager: Any = None, **kwargs: Any
) -> Any:
    """A compiled layer's forward: checkpointed from outside the compiled region."""
    import torch

    if not torch.is_grad_enabled():
        return _eager(self, *args, **kwargs)
    if getattr(self, "gradient_checkpointing", False) and self.training:
        if kwargs.get("use_cache"):
            kwargs["use_cache"] = False  # as transformers' checkpointing wrapper does
        return self._gradient_checkpointing_func(partial(_compiled, self, **kwargs), *args)
    return _compiled(self, *args, **kwargs)


def apply_compile(model: Any, decision: CompileDecision) -> CompileDecision:
    """Compile ``model``'s decoder layers as decided (lazily: the first step compiles);
    returns the decision with the number of layers. :func:`uncompile` undoes it."""
    import types

    if decision.compile != "on":
        return decision
    layers = decoder_layers(model)
    if not layers:
        return decide_no_layers(decision.setting, model)
    inner = _inner_forward(layers[0])
    compiled = _compiled(inner)
    for layer in layers:
        layer.forward = types.MethodType(
            partial(_layer_forward, _compiled=compiled, _eager=inner), layer
        )
    mark_compile_start()
    return replace(decision, layers=len(layers), layer_class=type(layers[0]).__name__)


def uncompile(model: Any) -> int:
    """Give ``model``'s decoder layers their own forward back; returns how many."""
    layers = [m for m in decoder_layers(model) if "forward" in m.__dict__]
    for layer in layers:
        del layer.__dict__["forward"]
    return len(layers)


_START: dict[str, Any] = {}


def _dynamo_numbers() -> dict[str, float]:
    from torch._dynamo.utils import compilation_time_metrics, counters

    return {
        "compile_s": float(sum(compilation_time_metrics.get("_compile.compile_inner", []))),
        "graphs": float(counters["stats"].get("unique_graphs", 0)),
        "graph_breaks": float(sum(counters["graph_break"].values())),
    }


def _compilations() -> list[Any]:
    from torch._dynamo.utils import get_compilation_metrics

    return list(get_compilation_metrics())


def mark_compile_start() -> None:
    """Start counting compile time, graphs and graph breaks (see :func:`compile_stats`)."""
    _START.clear()
    with contextlib.suppress(Exception):  # private counters: best effort (compile_stats says)
        _START.update(_dynamo_numbers())
        _START["seen"] = {id(m) for m in _compilations()}


def compile_stats() -> dict[str, Any]:
    """Since :func:`apply_compile`: compile seconds (dynamo + inductor, forward and backward
    graphs), graphs compiled, graph breaks and their reasons, recompiles and why. Read from
    torch's private counters: where they are missing, says so instead of failing a run."""
    try:
        return _compile_stats()
    except Exception as err:
        return {"error": f"torch's compile counters are unreadable here ({type(err).__name__})"}


def _compile_stats() -> dict[str, Any]:
    from torch._dynamo.utils import counters

    now = _dynamo_numbers()
    out: dict[str, Any] = {"compile_s": round(now["compile_s"] - _START.get("compile_s", 0.0), 3)}
    for k in ("graphs", "graph_breaks"):
        out[k] = int(now[k] - _START.get(k, 0.0))
    out["graph_break_reasons"] = sorted({r.splitlines()[0][:160] for r in counters["graph_break"]})
    seen = _START.get("seen", set())
    new = [m for m in _compilations() if id(m) not in seen]
    reasons = [getattr(m, "recompile_reason", None) for m in new]
    out["recompiles"] = sum(1 for r in reasons if r)
    out["recompile_reasons"] = sorted({r.strip().splitlines()[0][:160] for r in reasons if r})
    return out


def use_compile(model: Any, setting: str, steps: int | None = None) -> CompileDecision:
    """Resolve ``train.compile`` for ``model`` (a run of ``steps`` micro-batches) and
    compile its layers as decided."""
    return apply_compile(model, choose_compile(model, setting, steps))
