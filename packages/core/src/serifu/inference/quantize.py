"""Reply weights: merge a single LoRA into the base, then optionally quantise to 4 bits.

Replies read every weight once per token, so at batch 1 their speed is set by the bytes of
weights read. Three maintained 4-bit kernel libraries:

* ``"int4"``: torchao's int4 weight-only (``Int4WeightOnlyConfig``, tinygemm tile-packed
  layout, group size 128): CUDA and bf16 only; its matmuls run inside
  :class:`serifu.accel.decode.StaticDecoder`'s CUDA graphs.
* ``"nf4"``: bitsandbytes NF4 (its batch-1 inference kernel), CPU or CUDA.
* ``"uint4"``: 4-bit asymmetric, one scale and zero per 64 weights (HQQ's format,
  ``(W_q - zeros) * scales ≈ W``), run on CUDA by Serifu's own Triton GEMV
  (:mod:`serifu.accel.uint4_gemv`, the default since session 29: per layer 1.45-2.0x as fast as
  GemLite's A16W4 kernels, whole replies 1.51x bf16 on line-3.6b and 1.69x on stablelm-beta-7b, one
  H100) or by GemLite's (``SERIFU_UINT4_KERNEL=gemlite``, ``pip install 'serifu[gemlite]'``;
  also where Serifu's kernel fails its start-up check). A table tied between the input
  embeddings and the head (line-3.6b, gemma-3-270m) is stored once in int8
  (:mod:`serifu.accel.int8_table`: GemLite's 8-bit head, so ``serifu[gemlite]`` still saves
  that table's memory; the 4-bit grid would cost +18 % perplexity). On the CPU the weights
  are rounded to the same grids and kept dequantised: the format's quality, measurable
  without a GPU, not its speed.

For int4 and nf4 the LoRA is merged first (its low-rank product folded into the bf16
weights), then the merged weights are quantised. A QLoRA adapter was trained on a 4-bit
base, and merging snaps most of its small delta back onto the 4-bit grid (perplexity +30 %
for gemma-3-270m, docs/benchmarks.md); ``uint4`` therefore keeps the adapter unmerged by
default (``merge=False``): the base's linear layers go 4-bit, the LoRA stays in full precision.
Serving several adapters over one base keeps them unmerged in bf16 (``merge=False``).
Measured (docs/benchmarks.md): uint4 is the fastest 4-bit path on a 7B model; an adapter
trained on NF4 loses quality on its min-max grid (gemma-3-270m: perplexity +23-41 %), one
trained on the uint4 grid itself (``train.quant_type = "uint4"``, :func:`round_uint4_`) 0-10 %.
"""

from __future__ import annotations

from typing import Any

from serifu.errors import SerifuError

WEIGHTS = ("bf16", "int4", "nf4", "uint4")
TABLES = ("int8", "bf16")
"""How the ``uint4`` path keeps a tied embedding/head table (4 bits cost +18 % perplexity)."""
INT4_GROUP = 128
UINT4_GROUP = 64
UINT4_KERNELS = ("gemlite", "serifu")


def check_weights(weights: str) -> None:
    """A :class:`SerifuError` unless ``weights`` names a reply-weights kind."""
    if weights not in WEIGHTS:
        raise SerifuError(f"weights must be one of {', '.join(WEIGHTS)} (got {weights!r})")


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
    if getattr(embed, "serves_head", False):  # one int8 table for both (accel.int8_table)
        return True
    weight = getattr(head, "weight", None)  # a kernel library's head may have none
    return weight is not None and embed is not None and weight is embed.weight


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


def uint4_quantize(weight: Any, group_size: int = UINT4_GROUP) -> tuple[Any, Any, Any]:
    """Min-max asymmetric 4-bit codes of a (out, in) weight, one float scale and zero per
    ``group_size`` inputs: ``(codes - zeros) * scales ≈ weight`` (HQQ's format, GemLite's input)."""
    import torch

    out_features, in_features = weight.shape
    if in_features % group_size:
        raise SerifuError(
            f"uint4 weights need in_features divisible by {group_size} (got {in_features})"
        )
    groups = weight.detach().float().reshape(out_features, in_features // group_size, group_size)
    low, high = groups.amin(-1), groups.amax(-1)
    scales = ((high - low) / 15).clamp(min=1e-8)
    zeros = -low / scales
    codes = torch.round(groups / scales[..., None] + zeros[..., None]).clamp(0, 15)
    return codes.to(torch.uint8).reshape(out_features, in_features), scales, zeros


def uint4_dequantize(codes: Any, scales: Any, zeros: Any) -> Any:
    """The weight ``uint4_quantize`` codes stand for (float32)."""
    out_features, in_features = codes.shape
    groups = codes.float().reshape(out_features, scales.shape[1], -1)
    return ((groups - zeros[..., None]) * scales[..., None]).reshape(out_features, in_features)


def _base_linears(model: Any) -> list[tuple[Any, str, Any]]:
    """(parent, name, layer) of every linear layer of the base: not a head tied to the
    embeddings, not a LoRA layer (a PEFT layer's ``base_layer`` is included)."""
    import torch

    tied = _head_is_tied(model)
    head = model.get_output_embeddings()
    found = []
    for qualified, module in model.named_modules():
        if "lora_" in qualified:
            continue
        for name, child in module.named_children():
            if not isinstance(child, torch.nn.Linear) or (tied and child is head):
                continue
            found.append((module, name, child))
    return found


def round_uint4_(model: Any, group_size: int = UINT4_GROUP, table: str = "int8") -> Any:
    """Round the base's linear weights (:func:`_base_linears`) to the ``uint4`` grid, and a
    tied embedding/head table to int8 rows (``table="int8"``), in place, keeping them
    dequantised in their dtype: the CPU's ``uint4`` replies, and the base an adapter trains
    on with ``train.quant_type = "uint4"`` (the same codes GemLite packs, so such an adapter
    fits the GPU's ``uint4`` base exactly)."""
    import torch

    check_table(table)
    tied = _head_is_tied(model)
    with torch.no_grad():
        for _parent, _name, layer in _base_linears(model):
            codes, scales, zeros = uint4_quantize(layer.weight, group_size)
            layer.weight.copy_(uint4_dequantize(codes, scales, zeros).to(layer.weight.dtype))
    if tied and table == "int8":
        from serifu.accel.int8_table import round_int8_rows_

        round_int8_rows_(model.get_input_embeddings().weight)
    return model


def check_table(table: str) -> None:
    """A :class:`SerifuError` unless ``table`` names how the ``uint4`` path keeps a tied table."""
    if table not in TABLES:
        raise SerifuError(f"table must be one of {', '.join(TABLES)} (got {table!r})")


def _gemlite() -> Any:
    """The GemLite package (its ``helper`` module loaded), or a clear error without it."""
    try:
        import gemlite
        import gemlite.helper
    except ImportError as exc:
        raise SerifuError(
            "uint4 weights on a GPU need Serifu's uint4 kernel (Triton: pip install "
            "'serifu[triton]') or GemLite's (pip install 'serifu[gemlite]')"
        ) from exc
    return gemlite


def gemlite_layer(layer: Any, group_size: int = UINT4_GROUP) -> Any:
    """``layer`` (an ``nn.Linear`` on CUDA, bf16) as GemLite's A16W4 layer on its
    :func:`uint4_quantize` codes. GemLite's atomic-add precision is the caller's setting
    (``gemlite.set_native_atomic_bfp16``; :func:`quantize_uint4_` turns it off)."""
    import torch

    A16Wn = _gemlite().helper.A16Wn
    codes, scales, zeros = uint4_quantize(layer.weight, group_size)
    bias = layer.bias.data if layer.bias is not None else None
    processor = A16Wn(device=str(layer.weight.device), dtype=torch.bfloat16)
    return processor.from_weights(
        codes, scales.to(torch.bfloat16), zeros.to(torch.bfloat16), 4, group_size, bias=bias
    )


def uint4_kernel(kernel: str | None = None) -> str:
    """Which kernels run the ``uint4`` layers on CUDA: ``kernel``, else ``SERIFU_UINT4_KERNEL``,
    else Serifu's own (:mod:`serifu.accel.uint4_gemv`; ``"gemlite"``: GemLite's A16W4)."""
    import os

    chosen = kernel or os.environ.get("SERIFU_UINT4_KERNEL", "serifu")
    if chosen not in UINT4_KERNELS:
        raise SerifuError(
            f"the uint4 kernel must be one of {', '.join(UINT4_KERNELS)} (got {chosen!r})"
        )
    return chosen


def _serifu_uint4_or_notice(device: str, group_size: int) -> bool:
    """Whether Serifu's uint4 GEMV serves on ``device`` (else a one-line notice: GemLite)."""
    import sys

    from serifu.accel.uint4_gemv import kernel_error  # says so where triton is missing too

    if group_size != UINT4_GROUP:  # no need to run the kernel's check
        error: str | None = f"it takes groups of {UINT4_GROUP} weights, not {group_size}"
    else:
        error = kernel_error(device)
    if error is not None:
        print(f"note: uint4 layers use GemLite (Serifu's uint4 GEMV: {error})", file=sys.stderr)
    return error is None


def quantize_uint4_(
    model: Any, group_size: int = UINT4_GROUP, table: str = "int8", kernel: str | None = None
) -> Any:
    """``uint4`` weights for the base's linear layers (:func:`_base_linears`), in place: on
    CUDA Serifu's own GEMV (:class:`serifu.accel.uint4_gemv.Uint4Linear`; ``kernel="gemlite"``,
    or where it cannot serve: GemLite's A16W4 layers on the same codes), and a tied embedding/head
    table stored once in int8 (``table="int8"``: GemLite's 8-bit head over the codes the
    embedding gathers, :mod:`serifu.accel.int8_table`); on the CPU the rounded weights
    dequantised into the same layers (quality only; see the module docstring)."""
    import torch

    check_table(table)
    kernel = uint4_kernel(kernel)
    if next(model.parameters()).device.type != "cuda":
        round_uint4_(model, group_size, table)
        model.serifu_weights = "uint4-simulated"
        return model
    tied = _head_is_tied(model)
    device = str(next(model.parameters()).device)
    ours = kernel == "serifu" and _serifu_uint4_or_notice(device, group_size)
    if not ours:
        # float32 split-K sums: with GemLite's bf16 atomic adds a batch-1 output is 1-2e-2 off
        # the dequantised weights' product, with float32 ones 4e-3 (bf16 rounding alone;
        # bench/gpu/uint4_check.py): the CPU simulation then measures what the GPU computes
        _gemlite().set_native_atomic_bfp16(False)
    model.to(torch.bfloat16)
    for parent, name, layer in _base_linears(model):
        if ours:
            from serifu.accel.uint4_gemv import Uint4Linear

            setattr(parent, name, Uint4Linear.from_linear(layer))
        else:
            setattr(parent, name, gemlite_layer(layer, group_size))
        layer.weight = None  # the bf16 weight is done with
    if tied and table == "int8":
        _int8_table_or_notice(model)
    torch.cuda.empty_cache()
    model.serifu_weights = "uint4"
    model.serifu_uint4_kernel = "serifu" if ours else "gemlite"
    return model


def _int8_table_or_notice(model: Any) -> None:
    """The tied table in int8 (:func:`serifu.accel.int8_table.tie_int8_table_`), or, where
    GemLite cannot build its 8-bit head, the table left in bf16 with a one-line notice (the
    replies stay right; only the table's memory saving is lost)."""
    import sys

    from serifu.accel.int8_table import tie_int8_table_

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        tie_int8_table_(base)
    except Exception as err:  # an optional saving: GemLite's 8-bit layer missing or broken
        print(
            f"note: the tied embedding/head table stays in bf16 (GemLite's 8-bit head failed: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
            file=sys.stderr,
        )


def adapter_grid(info: dict[str, Any]) -> str | None:
    """The 4-bit grid an adapter was trained on ("nf4", "uint4"), from its ``serifu.json``
    (:func:`serifu.training.adapters.read_adapter`); None: full precision or unknown."""
    cfg = info.get("config") or {}
    if not cfg.get("quantize_4bit"):
        return None
    return str(cfg.get("quant_type") or "nf4")


def grid_notice(info: dict[str, Any], weights: str, merge: bool) -> str | None:
    """A line for the user when ``uint4`` replies run, unmerged, an adapter trained on the
    NF4 grid (None otherwise): such an adapter measured perplexity +23-38 % on the uint4
    base of gemma-3-270m, one trained on the uint4 grid +0-10 % (docs/benchmarks.md)."""
    if weights != "uint4" or merge or adapter_grid(info) != "nf4":
        return None
    return (
        "note: this adapter was trained on an NF4 base; on the uint4 base its replies lose "
        "quality (perplexity +23-38 % measured on gemma-3-270m). An adapter trained for "
        "uint4: serifu train ... --set train.quant_type=uint4"
    )


def prepare_reply_weights(
    model: Any,
    weights: str = "bf16",
    *,
    merge: bool | None = None,
    fuse_lora: bool = True,
    table: str = "int8",
    uint4_kernel: str | None = None,
) -> Any:
    """The model replies run on: the LoRA merged (``merge``; None: merged unless
    ``weights`` is ``uint4``, whose base goes 4-bit under the unmerged LoRA), then
    quantised to ``weights``. An unmerged uint4 LoRA decodes as reductions that a compiled
    step fuses into its neighbours (:mod:`serifu.accel.lora_decode`; ``fuse_lora=False``:
    PEFT's matmuls). ``table``: a tied embedding/head table under ``uint4``, int8 rows or
    left in bf16; ``uint4_kernel``: :func:`uint4_kernel`'s choice."""
    check_weights(weights)
    check_table(table)
    from serifu.accel.gemv import drop_gemv

    drop_gemv(model)  # a decoder's GEMV layers (plain bf16 only) back before any quantising
    if merge is None:
        merge = weights != "uint4"
    if weights in ("int4", "nf4") and not merge and hasattr(model, "merge_and_unload"):
        raise SerifuError(f"{weights} reply weights need the adapter merged first (merge=True)")
    if merge:
        model = merge_adapter(model)
    if weights == "int4":
        quantize_int4_(model)
    elif weights == "nf4":
        quantize_nf4_(model)
    elif weights == "uint4":
        quantize_uint4_(model, table=table, kernel=uint4_kernel)
        if not merge and fuse_lora:
            from serifu.accel.lora_decode import fuse_lora_for_decode_

            fuse_lora_for_decode_(model)
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
