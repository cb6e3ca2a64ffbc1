"""Reply weights: merge a single LoRA into the base, then optionally quantise to 4 bits.

Replies read every weight once per token, so at batch 1 their speed is set by the bytes of
weights read. Two maintained 4-bit paths:

* ``"int4"``: torchao's int4 weight-only (``Int4WeightOnlyConfig``, tinygemm tile-packed
  layout, group size 128): CUDA and bf16 only; its matmuls run inside
  :class:`serifu.accel.decode.StaticDecoder`'s CUDA graphs.
* ``"nf4"``: bitsandbytes NF4 (its batch-1 inference kernel), CPU or CUDA.

The LoRA is merged first (its low-rank product folded into the bf16 weights), then the
merged weights are quantised: one adapter per loaded model. Serving several adapters over
one base keeps them unmerged instead (:func:`prepare_reply_weights` with ``merge=False``).
"""

from __future__ import annotations

from typing import Any

from serifu.errors import SerifuError

WEIGHTS = ("bf16", "int4", "nf4")
INT4_GROUP = 128


def merge_adapter(model: Any) -> Any:
    """The plain model with a PEFT model's single LoRA folded into its weights (else as is)."""
    if not hasattr(model, "merge_and_unload"):
        return model
    adapters = list(getattr(model, "peft_config", {}) or {})
    if len(adapters) > 1:
        raise SerifuError(
            f"cannot merge {len(adapters)} adapters ({', '.join(adapters)}) into one base: "
            "serve them unmerged"
        )
    return model.merge_and_unload()


def _head_is_tied(model: Any) -> bool:
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    return head is not None and embed is not None and head.weight is embed.weight


def quantize_int4_(model: Any, group_size: int = INT4_GROUP) -> Any:
    """torchao int4 weight-only on every linear layer (the head too unless tied to the
    embeddings), in place. Needs CUDA and bf16 weights (torchao's int4 kernels)."""
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        raise SerifuError(
            "int4 weights (torchao) need a CUDA GPU: torchao 0.18 has no CPU kernel for its "
            "int4 layout; on the CPU use --weights nf4 (bitsandbytes) or bf16"
        )
    try:
        from torchao.quantization import Int4WeightOnlyConfig, quantize_
    except ImportError as exc:
        raise SerifuError(
            "int4 weights need torchao: pip install 'serifu[int4]' (torchao==0.18.0)"
        ) from exc
    model.to(torch.bfloat16)
    tied = _head_is_tied(model)
    head = model.get_output_embeddings()

    def wanted(module: Any, _fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and not (tied and module is head)

    config = Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d")
    quantize_(model, config, filter_fn=wanted)
    model.serifu_weights = "int4"
    return model


def quantize_nf4_(model: Any) -> Any:
    """bitsandbytes NF4 (double quantisation) for every linear layer but the head, in place:
    the layers ``from_pretrained(quantization_config=...)`` would make."""
    import bitsandbytes as bnb
    import torch

    head = model.get_output_embeddings()
    param = next(model.parameters())
    dev, dtype = param.device, param.dtype
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if not isinstance(child, torch.nn.Linear) or child is head:
                continue
            q = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=dtype,
                compress_statistics=True,
                quant_type="nf4",
                device="meta",
            )
            weight: Any = bnb.nn.Params4bit(
                child.weight.data.to("cpu" if dev.type == "cpu" else dev),
                requires_grad=False,
                compress_statistics=True,
                quant_type="nf4",
            )
            q.weight = weight.to(dev)  # on CUDA: quantised here
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, q)
    model.serifu_weights = "nf4"
    return model


def prepare_reply_weights(model: Any, weights: str = "bf16", *, merge: bool = True) -> Any:
    """The model replies run on: the LoRA merged (``merge``), then quantised to ``weights``."""
    if weights not in WEIGHTS:
        raise SerifuError(f"weights must be one of {', '.join(WEIGHTS)} (got {weights!r})")
    if weights != "bf16" and not merge and hasattr(model, "merge_and_unload"):
        raise SerifuError("4-bit reply weights need the adapter merged first (merge=True)")
    if merge:
        model = merge_adapter(model)
    if weights == "int4":
        quantize_int4_(model)
    elif weights == "nf4":
        quantize_nf4_(model)
    return model.eval()


def _tensor_bytes(t: Any, seen: set[int]) -> int:
    """Bytes of a tensor, of the inner tensors of a quantised tensor subclass (torchao), or of
    a bitsandbytes weight with its quantisation state; each storage counted once."""
    import torch

    if not isinstance(t, torch.Tensor):
        return 0
    if hasattr(t, "__tensor_flatten__") and type(t).__name__ != "Params4bit":
        names, _ = t.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(t, n), seen) for n in names)
    try:
        key = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        key = id(t)
    if key in seen and key != 0:
        return 0
    seen.add(key)
    n = t.numel() * t.element_size()
    state = getattr(t, "quant_state", None)
    while state is not None:  # absmax (and the double-quantised absmax's own state)
        n += _tensor_bytes(getattr(state, "absmax", None), seen)
        n += _tensor_bytes(getattr(state, "code", None), seen)
        state = getattr(state, "state2", None)
    return n


def weight_bytes(model: Any) -> int:
    """Bytes the model's parameters and buffers occupy (tied weights counted once)."""
    seen: set[int] = set()
    total = sum(_tensor_bytes(p, seen) for p in model.parameters())
    return total + sum(_tensor_bytes(b, seen) for b in model.buffers())
