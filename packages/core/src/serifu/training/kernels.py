"""Fused Triton kernels from Liger inside Serifu's trainer (``train.kernels``).

Liger (``liger-kernel``, ``pip install 'serifu[liger]'``) replaces a decoder's RMSNorm,
gated MLP activation (SwiGLU / GeGLU), LayerNorm and rotary embedding with fused Triton
kernels: fewer kernel launches and fewer saved activations per layer. It has kernels for
some architectures only (llama, gemma3, qwen, mistral …; not gpt-neox or gpt-j) and runs
only on CUDA. ``"auto"`` uses it when it imports, the model is on a CUDA device and Liger
knows the model type; ``"liger"`` insists (an error says why it cannot); ``"off"`` never.

Only the layers are patched: Serifu keeps its own loss (chunked through the head at the
labelled positions, :mod:`serifu.accel.loss`); Liger's fused linear cross-entropy is the
separate switch ``train.loss_kernel = "liger"``. The patches go through Liger's public
per-instance entry (``_apply_liger_kernel_to_instance``, what transformers' and TRL's
trainers call), which binds new ``forward`` methods to the model's modules and also swaps
module-level names in the transformers modeling module (the rotary function, the norm and
MLP classes): :func:`restore_point` takes those back after training, so the rest of the
process (chat after train, a bench's next run) sees the stock model again.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from serifu.errors import SerifuError

Setting = Literal["auto", "liger", "off"]
SETTINGS = ("auto", "liger", "off")
LOSS_KERNELS = ("serifu", "liger")
LIGER_LAYERS: dict[str, bool] = {
    "rope": True,
    "rms_norm": True,
    "swiglu": True,
    "geglu": True,
    "layer_norm": True,
    "cross_entropy": False,  # Serifu computes its own loss (see the module docstring)
    "fused_linear_cross_entropy": False,
}
"""What is asked of Liger's per-architecture function (it takes the keys it knows)."""
INSTALL_HINT = "pip install 'serifu[liger]'"


@dataclass(frozen=True)
class KernelDecision:
    """Which kernels a run uses and why (training log and the adapter's ``serifu.json``)."""

    kernels: Literal["liger", "off"]
    reason: str
    setting: str = "auto"
    model_type: str | None = None
    loss: Literal["serifu", "liger"] = "serifu"
    """``train.loss_kernel``: Serifu's chunked head loss, or Liger's fused linear cross-entropy."""
    patched: dict[str, int] = field(default_factory=dict)
    """After :func:`apply_kernels`: Liger layer kind -> modules patched (``rope``: 1 when
    the rotary function was swapped)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def liger_unavailable() -> str | None:
    """Why Liger cannot be used in this environment (None: it imports)."""
    if importlib.util.find_spec("liger_kernel") is None:
        return f"liger-kernel is not installed ({INSTALL_HINT})"
    try:
        import liger_kernel.transformers.monkey_patch  # noqa: F401
    except Exception as err:  # e.g. no triton, or a transformers it does not support
        return f"liger-kernel does not import here ({type(err).__name__}: {str(err)[:200]})"
    return None


def liger_model_types() -> frozenset[str]:
    """Model types Liger has kernels for (empty when it does not import)."""
    if liger_unavailable() is not None:
        return frozenset()
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return frozenset(MODEL_TYPE_TO_APPLY_LIGER_FN)


def decide(
    setting: str,
    *,
    device: str,
    model_type: str,
    unavailable: str | None,
    supported: bool,
    loss_kernel: str = "serifu",
) -> KernelDecision:
    """The policy with plain values; ``"liger"`` that cannot run is a :class:`SerifuError`."""
    if setting not in SETTINGS:
        raise SerifuError(
            f"train.kernels must be one of {', '.join(repr(s) for s in SETTINGS)}, not {setting!r}"
        )
    if loss_kernel not in LOSS_KERNELS:
        raise SerifuError(
            f"train.loss_kernel must be one of {', '.join(repr(s) for s in LOSS_KERNELS)}, "
            f"not {loss_kernel!r}"
        )
    cannot = None
    if not device.startswith("cuda"):
        cannot = f"the model is on {device}, and Liger's Triton kernels need a CUDA GPU"
    elif unavailable is not None:
        cannot = unavailable
    if loss_kernel == "liger" and cannot is not None:
        raise SerifuError(
            f"train.loss_kernel = 'liger' cannot be used: {cannot}. Set train.loss_kernel "
            "to 'serifu' (the default)"
        )
    loss: Literal["serifu", "liger"] = "liger" if loss_kernel == "liger" else "serifu"
    if setting == "off":
        return KernelDecision("off", "set in the config", setting, model_type, loss)
    why = cannot
    if why is None and not supported:
        why = f"Liger has no kernels for model type {model_type!r}"
    if why is None:
        reason = f"{setting}: Liger supports {model_type!r}"
        return KernelDecision("liger", reason, setting, model_type, loss)
    if setting == "liger":
        raise SerifuError(
            f"train.kernels = 'liger' cannot be used: {why}. Set train.kernels to 'auto' "
            "(Liger where it can run, Serifu's layers elsewhere) or 'off'"
        )
    return KernelDecision("off", f"auto: {why}", setting, model_type, loss)


def model_type_of(model: Any) -> str:
    from serifu.training.loss import causal_lm

    return str(getattr(causal_lm(model).config, "model_type", "") or "")


def choose_kernels(model: Any, setting: str, loss_kernel: str = "serifu") -> KernelDecision:
    """Resolve ``train.kernels`` and ``train.loss_kernel`` for ``model`` where its weights
    are (see :func:`decide`)."""
    device = str(next(model.parameters()).device)
    kind = model_type_of(model)
    wanted = setting in ("auto", "liger") or loss_kernel == "liger"
    look = wanted and device.startswith("cuda") and setting in SETTINGS
    unavailable = liger_unavailable() if look else None
    supported = look and unavailable is None and kind in liger_model_types()
    return decide(
        setting,
        device=device,
        model_type=kind,
        unavailable=unavailable,
        supported=supported,
        loss_kernel=loss_kernel,
    )


def _modeling_module(model: Any) -> Any:
    from serifu.training.loss import causal_lm

    return sys.modules[type(causal_lm(model)).__module__]


def apply_kernels(model: Any, decision: KernelDecision) -> KernelDecision:
    """Patch ``model`` (plain or PEFT-wrapped) as decided; returns the decision with what
    was patched. Call :func:`restore_point` first to be able to undo it."""
    from serifu.training.loss import LOSS_KERNEL_ATTR, causal_lm

    lm = causal_lm(model)
    if decision.loss == "liger":
        check_liger_head(model)
        setattr(lm, LOSS_KERNEL_ATTR, "liger")
    if decision.kernels != "liger":
        return decision
    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance

    modeling = _modeling_module(model)
    rope_before = getattr(modeling, "apply_rotary_pos_emb", None)
    undo = restore_point(model)
    patched: dict[str, int] = {}
    why = ""
    try:
        _apply_liger_kernel_to_instance(lm, **LIGER_LAYERS)
    except Exception as err:  # half-patched: taken back below
        why = f"Liger could not patch it ({type(err).__name__}: {str(err)[:200]})"
    for module in lm.modules():
        if "forward" in module.__dict__ and module._get_name().startswith("Liger"):
            kind = module._get_name().removeprefix("Liger")
            patched[kind] = patched.get(kind, 0) + 1
    if getattr(modeling, "apply_rotary_pos_emb", None) is not rope_before:
        patched["rope"] = 1
    if not why and not patched:
        why = "Liger patched nothing"
    if why:
        undo()
        where = f"{type(lm).__name__} (model type {decision.model_type!r})"
        if decision.setting != "auto":
            raise SerifuError(f"train.kernels = 'liger': {why} in {where}; set it to 'off'")
        reason = f"auto: {why} in {where}"
        return KernelDecision("off", reason, decision.setting, decision.model_type, decision.loss)
    return KernelDecision(
        "liger",
        decision.reason,
        decision.setting,
        decision.model_type,
        decision.loss,
        dict(sorted(patched.items())),
    )


def check_liger_head(model: Any) -> None:
    """Liger's fused linear cross-entropy needs the output head as a plain weight matrix."""
    from serifu.training.loss import causal_lm

    head = causal_lm(model).get_output_embeddings()
    weight = getattr(head, "weight", None)
    plain = weight is not None and type(weight).__name__ in ("Parameter", "Tensor")
    if not plain or getattr(head, "bias", None) is not None:
        raise SerifuError(
            f"train.loss_kernel = 'liger' needs an unquantized output head without bias; "
            f"this model's is {type(head).__name__}. Set train.loss_kernel to 'serifu'"
        )


INSTANCE_NAMES = (
    "forward",
    "extra_repr",
    "_get_name",
    "serifu_loss_kernel",  # LOSS_KERNEL_ATTR
    "_gradient_checkpointing_func",  # serifu.training.offload wraps it
    "serifu_lean_hash",  # serifu.accel.lora_train.HASH_ATTR
    "serifu_mask_clock",  # serifu.accel.mask_hash.CLOCK_ATTR
)
"""What Liger (and TRL) bind on module instances, the loss switch, and what Serifu's own
levers set on layers (the checkpoint function offloading wraps, the lean LoRA's hashed masks
and their clock)."""


def restore_point(model: Any) -> Callable[[], None]:
    """Remember the model's modeling-module globals and per-instance methods; the returned
    function puts them back (undoing :func:`apply_kernels` and TRL's head patch)."""
    modeling = _modeling_module(model)
    module_globals = dict(vars(modeling))
    modules = list(model.modules())
    bound = [{k: m.__dict__[k] for k in INSTANCE_NAMES if k in m.__dict__} for m in modules]

    def restore() -> None:
        for key, value in module_globals.items():
            if vars(modeling).get(key) is not value:
                setattr(modeling, key, value)
        for m, before in zip(modules, bound, strict=True):
            for k in INSTANCE_NAMES:
                if k in before:
                    m.__dict__[k] = before[k]
                else:
                    m.__dict__.pop(k, None)

    return restore
