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

When the whole step does not fit, ``"auto"`` checkpoints only as many layers as it must:
every n-th layer (transformers' ``every_n_layers``) for the largest n whose step fits,
counting for the checkpointed layers their inputs and one layer's recompute. Each layer
left out of checkpointing saves its recompute (the H200 ablation: every 2nd layer 1.09-1.16x
the speed of all, at about half the memory of none). With ``train.checkpoint_every`` set
above 1 that choice is the user's. Free memory honours a per-process memory fraction
(``torch.cuda.set_per_process_memory_fraction``), so a process sharing a GPU plans within
its share.
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
    every: int = 1
    """With ``on``: checkpoint every ``every``-th decoder layer (1: all of them)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolve(self, config: Any) -> Any:
        """``config`` with the decision in place of ``"auto"``."""
        update = {"gradient_checkpointing": self.on, "checkpoint_every": self.every}
        return config.model_copy(update=update)


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
    checkpointed: int = 0,
) -> int:
    """Estimated activation memory of one step of ``tokens`` tokens with ``checkpointed`` of
    the ``layers`` checkpointed (0: none): those keep their bf16 input, plus one layer's
    activations while it recomputes."""
    unit = 2 * hidden + intermediate + q_width + 2 * kv_width
    per_layer = BYTES_PER_UNIT * unit + (4 * 4 * hidden if float32_norms else 0)
    # one chunk of the loss: ~1.6 x its float32 logits on the closed-form head, ~3 x through
    # autograd (bench/loss_memory.py); the larger bounds both
    head = 3 * chunk_bytes if vocab else 0
    kept = (layers - checkpointed) * per_layer
    if checkpointed:
        kept += checkpointed * hidden * 2 + per_layer
    return tokens * kept + tokens * hidden * 2 * 4 + head


def every_nth(layers: int, every: int) -> int:
    """How many of ``layers`` checkpointing every ``every``-th layer checkpoints."""
    return -(-layers // every)


def partial_choices(layers: int) -> list[int]:
    """The ``every`` values above 1 worth trying: the largest one for each count of
    checkpointed layers (the same memory and recompute, the layers spread widest)."""
    found: dict[int, int] = {}
    for n in range(2, layers + 1):
        found[every_nth(layers, n)] = n
    return sorted(found.values())


def decide(
    setting: Setting,
    *,
    free_bytes: int | None,
    estimate_bytes: int | None,
    step_tokens: int | None = None,
    margin: float = MARGIN,
    reserve: int = RESERVE,
    every: int = 1,
    partial: dict[int, int] | None = None,
) -> CheckpointDecision:
    """The policy with plain numbers: ``free_bytes`` None means not on a GPU. ``partial``
    maps ``every`` (n > 1) to the step's estimate when every n-th layer is checkpointed;
    when the whole step does not fit, the largest n that fits is chosen, else ``every``."""
    if setting is not True and setting is not False and setting != "auto":
        raise ValueError(f"gradient_checkpointing must be true, false or 'auto', not {setting!r}")
    if isinstance(setting, bool):
        return CheckpointDecision(setting, "set in the config", str(setting).lower(), every=every)
    if free_bytes is None or estimate_bytes is None:
        return CheckpointDecision(False, "auto: not on a GPU (CPU default: off)", every=every)
    need = margin * estimate_bytes + reserve
    fits = need <= free_bytes
    verdict = "fits" if fits else "does not fit"
    reason = (
        f"auto: a step without checkpointing needs ~{estimate_bytes / GIB:.1f} GiB "
        f"(x{margin:g} + {reserve / GIB:g} GiB = {need / GIB:.1f}); {free_bytes / GIB:.1f} GiB "
        f"free: {verdict}, checkpointing {'off' if fits else 'on'}"
    )
    chosen, options = every, partial or {}
    if not fits:
        for n in sorted(options, reverse=True):  # fewest layers checkpointed first
            if margin * options[n] + reserve <= free_bytes:
                chosen = n
                reason += f" for 1 layer in {n} (~{options[n] / GIB:.1f} GiB)"
                break
    return CheckpointDecision(
        not fits,
        reason,
        free_gib=round(free_bytes / GIB, 2),
        estimate_gib=round(estimate_bytes / GIB, 2),
        step_tokens=step_tokens,
        every=chosen,
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

    free, total = torch.cuda.mem_get_info(device)
    allocated = torch.cuda.memory_allocated(device)
    found = free + torch.cuda.memory_reserved(device) - allocated
    share = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch >= 2.6
    fraction = share(device) if share is not None else 1.0
    if fraction < 1:  # the allocator stops this process at its share
        found = min(found, int(fraction * total) - allocated)
    return int(found)


def choose_checkpointing(model: Any, config: Any, tokens: int | None = None) -> CheckpointDecision:
    """Resolve ``config.gradient_checkpointing`` for ``model`` where it sits (see :func:`decide`).
    ``tokens``: the most tokens a micro-batch of the run's plan runs (a shared prompt prefix
    counted once per row: :func:`serifu.training.shared_prefix.run_tokens`); default: the
    config's bound (:func:`step_tokens`)."""
    import torch

    from serifu.training.loss import CHUNK_BYTES

    setting, every = config.gradient_checkpointing, config.checkpoint_every
    if isinstance(setting, bool):
        return decide(setting, free_bytes=None, estimate_bytes=None, every=every)
    dev = next(model.parameters()).device
    if dev.type != "cuda" or not torch.cuda.is_available():
        return decide(setting, free_bytes=None, estimate_bytes=None, every=every)
    tokens = tokens or step_tokens(config)
    dims = model_dims(model.config)
    estimate = activation_bytes(**dims, tokens=tokens, chunk_bytes=CHUNK_BYTES)
    layers = dims["layers"]
    partial = {  # every n-th layer checkpointed; only where the user left every at 1
        n: activation_bytes(
            **dims, tokens=tokens, chunk_bytes=CHUNK_BYTES, checkpointed=every_nth(layers, n)
        )
        for n in partial_choices(layers)
    }
    return decide(
        setting,
        free_bytes=free_gpu_bytes(dev),
        estimate_bytes=estimate,
        step_tokens=tokens,
        every=every,
        partial=partial if every == 1 else None,
    )
