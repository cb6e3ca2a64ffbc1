"""Gradient checkpointing chosen from free GPU memory (``train.gradient_checkpointing = "auto"``).

Checkpointing recomputes each layer's forward in backward: on the GPU it costs 1.3-1.8x
in speed and saves 4-8x in activation memory. ``"auto"`` turns it off when a step's
activations fit in the free memory with a safety margin, on otherwise; on the CPU it
stays off (the behaviour before ``"auto"``: CPU steps are small and memory is the host's).

The estimate is analytic (from the model config and the step's token budget), not a
measured probe step: a probe would need a forward/backward outside the training loop
(RNG, resume and interrupt bookkeeping) and, without checkpointing, could itself run out
of memory on the step it is meant to protect. Per token and decoder layer, without
checkpointing, the backward keeps the bf16 inputs and outputs of the norms, the
attention projections and the MLP (variable-length flash attention: no seq x seq scores),
plus LoRA's dropout copies and the architectures' elementwise temporaries. Bytes per
token per layer ~ ``BYTES_PER_UNIT x (2 x hidden + intermediate + q_width + 2 x kv_width)``;
``BYTES_PER_UNIT = 6`` (3 bf16 copies per unit) is the upper envelope of the peaks
measured on the H200 (bench/results/2026-11-29-nvidia-h200-ablation.json, no-ckpt rows:
2.9-5.5 bytes per unit for gpt-neox, llama and gpt-j; gemma is above it because of its
float32 norms and the loss head's fixed chunk, which are added separately). The decision
then asks for ``MARGIN`` x the estimate + ``RESERVE`` of free memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

GIB = 2**30
BYTES_PER_UNIT = 6
"""Bytes kept per token, per layer and per unit of width (see the module docstring)."""
MARGIN = 1.25
"""Headroom over the estimate: allocator fragmentation, temporaries of the backward."""
RESERVE = 2 * GIB
"""Always left free: CUDA context growth, the optimizer state, the loss head's chunks."""

Setting = bool | Literal["auto"]


@dataclass(frozen=True)
class CheckpointDecision:
    """What was decided, and why (recorded in the training log and the adapter's serifu.json)."""

    on: bool
    reason: str
    setting: str = "auto"
    free_gib: float | None = None
    estimate_gib: float | None = None
    step_tokens: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def activation_bytes(
    *,
    layers: int,
    hidden: int,
    intermediate: int,
    q_width: int,
    kv_width: int,
    tokens: int,
    vocab: int = 0,
    chunk_bytes: int = 0,
    float32_norms: bool = False,
) -> int:
    """Estimated activation memory of one step of ``tokens`` tokens without checkpointing."""
    unit = 2 * hidden + intermediate + q_width + 2 * kv_width
    per_layer = BYTES_PER_UNIT * unit + (4 * 4 * hidden if float32_norms else 0)
    # one chunk of the loss: ~1.6 x its float32 logits on the closed-form head, ~3 x through
    # autograd (bench/loss_memory.py); the larger bounds both
    head = 3 * chunk_bytes if vocab else 0
    return tokens * layers * per_layer + tokens * hidden * 2 * 4 + head


def decide(
    setting: Setting,
    *,
    free_bytes: int | None,
    estimate_bytes: int | None,
    step_tokens: int | None = None,
    margin: float = MARGIN,
    reserve: int = RESERVE,
) -> CheckpointDecision:
    """The policy with plain numbers: ``free_bytes`` None means not on a GPU."""
    if setting is not True and setting is not False and setting != "auto":
        raise ValueError(f"gradient_checkpointing must be true, false or 'auto', not {setting!r}")
    if isinstance(setting, bool):
        return CheckpointDecision(setting, "set in the config", str(setting).lower())
    if free_bytes is None or estimate_bytes is None:
        return CheckpointDecision(False, "auto: not on a GPU (CPU default: off)")
    need = margin * estimate_bytes + reserve
    fits = need <= free_bytes
    verdict = "fits" if fits else "does not fit"
    reason = (
        f"auto: a step without checkpointing needs ~{estimate_bytes / GIB:.1f} GiB "
        f"(x{margin:g} + {reserve / GIB:g} GiB = {need / GIB:.1f}); {free_bytes / GIB:.1f} GiB "
        f"free: {verdict}, checkpointing {'off' if fits else 'on'}"
    )
    return CheckpointDecision(
        not fits,
        reason,
        free_gib=round(free_bytes / GIB, 2),
        estimate_gib=round(estimate_bytes / GIB, 2),
        step_tokens=step_tokens,
    )


def model_dims(config: Any) -> dict[str, Any]:
    """The widths :func:`activation_bytes` needs, from a transformers config."""
    c = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(c.hidden_size)
    heads = int(c.num_attention_heads)
    head_dim = int(getattr(c, "head_dim", None) or hidden // heads)
    kv_heads = int(getattr(c, "num_key_value_heads", None) or heads)
    inner = getattr(c, "intermediate_size", None) or getattr(c, "n_inner", None) or 4 * hidden
    return {
        "layers": int(c.num_hidden_layers),
        "hidden": hidden,
        "intermediate": int(inner),
        "q_width": heads * head_dim,
        "kv_width": kv_heads * head_dim,
        "vocab": int(c.vocab_size),
        "float32_norms": str(getattr(c, "model_type", "")).startswith("gemma"),
    }


def step_tokens(config: Any) -> int:
    """Most tokens one micro-batch can hold: the token budget, else batch x max_length."""
    return int(config.max_tokens or config.batch_size * config.max_length)


def free_gpu_bytes(device: Any) -> int:
    """Free memory on ``device``, counting what torch's allocator holds but does not use."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached)


def choose_checkpointing(model: Any, config: Any) -> CheckpointDecision:
    """Resolve ``config.gradient_checkpointing`` for ``model`` where it sits (see :func:`decide`)."""
    import torch

    from serifu.training.loss import CHUNK_BYTES

    setting = config.gradient_checkpointing
    if isinstance(setting, bool):
        return decide(setting, free_bytes=None, estimate_bytes=None)
    dev = next(model.parameters()).device
    if dev.type != "cuda" or not torch.cuda.is_available():
        return decide(setting, free_bytes=None, estimate_bytes=None)
    tokens = step_tokens(config)
    estimate = activation_bytes(**model_dims(model.config), tokens=tokens, chunk_bytes=CHUNK_BYTES)
    return decide(
        setting, free_bytes=free_gpu_bytes(dev), estimate_bytes=estimate, step_tokens=tokens
    )
