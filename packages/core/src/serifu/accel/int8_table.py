"""A tied embedding/head table stored once in int8, a float32 scale per 32 columns of a row.

Models that tie their input embeddings to the output head (line-3.6b, gemma-3-270m) keep one
(vocab, hidden) table for both. The ``uint4`` reply path cannot round it to the 4-bit grid of
the linear layers (perplexity +18 % on gemma-3-270m, docs/benchmarks.md), but symmetric int8
codes cost next to nothing in quality and halve the table's bytes. On CUDA the head reads the
codes through GemLite's 8-bit GEMV (:func:`int8_head`), whose weight is a transposed view of
the same codes this module gathers the input rows from: the table is stored once.
"""

from __future__ import annotations

from typing import Any

import torch

INT8_MAX = 127
INT8_GROUP = 32
"""Weights per int8 scale along a row. One scale per whole row loses gemma-3-270m's rows with
outliers (a row's largest weight is up to 21× its RMS): 1.9 % relative error and held-out
perplexity +1.4 %; groups of 32: 0.15 % (docs/benchmarks.md)."""


def int8_rows(weight: torch.Tensor, group: int = INT8_GROUP) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 codes of a (rows, cols) table and its float32 scales, one per ``group``
    columns of a row (rows, cols // group): ``codes * scales ≈ weight``, each group's largest
    magnitude on ±127."""
    rows, cols = weight.shape
    if cols % group:
        raise ValueError(f"an int8 table needs columns divisible by {group} (got {cols})")
    w = weight.detach().float().reshape(rows, cols // group, group)
    scales = (w.abs().amax(dim=-1, keepdim=True) / INT8_MAX).clamp(min=1e-8)
    codes = torch.round(w / scales).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return codes.reshape(rows, cols), scales.squeeze(-1)


def int8_dequantize(codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The float32 values ``int8_rows`` codes stand for (codes ``(..., cols)``, scales
    ``(..., groups)``: the whole table, or rows of it)."""
    groups = codes.float().reshape(*codes.shape[:-1], scales.shape[-1], -1)
    return (groups * scales.unsqueeze(-1)).reshape(codes.shape)


def round_int8_rows_(weight: torch.Tensor, group: int = INT8_GROUP) -> None:
    """Round a table to its int8 grid in place, kept dequantised in its dtype (the CPU's
    stand-in for :class:`Int8Embedding` + :func:`int8_head`)."""
    with torch.no_grad():
        weight.copy_(int8_dequantize(*int8_rows(weight, group)).to(weight.dtype))


class Int8Embedding(torch.nn.Module):
    """Input embeddings gathered from int8 rows × their scales, in ``dtype``, times the
    replaced layer's ``embed_scale`` where it had one (Gemma scales its embeddings)."""

    serves_head = True  # the same codes are the output head's weight (int8_head)

    def __init__(
        self,
        codes: torch.Tensor,
        scales: torch.Tensor,
        dtype: torch.dtype,
        embed_scale: Any = None,
    ) -> None:
        super().__init__()
        self.codes: torch.Tensor
        self.scales: torch.Tensor
        self.register_buffer("codes", codes)
        self.register_buffer("scales", scales)
        self.dtype = dtype
        self.num_embeddings, self.embedding_dim = codes.shape
        self.embed_scale = embed_scale

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """The dequantised table rows ``index`` (``index.shape + (hidden,)``, in ``dtype``):
        the input embeddings, and the head's rows for a reply's output vocabulary."""
        return int8_dequantize(self.codes[index], self.scales[index]).to(self.dtype)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.rows(input_ids)
        if self.embed_scale is None:
            return out
        scale = self.embed_scale
        return out * (scale.to(self.dtype) if isinstance(scale, torch.Tensor) else scale)


def int8_head(codes: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> Any:
    """GemLite's 8-bit layer (symmetric, float32 scales per group) over ``codes`` without
    copying them: its weight is ``codes.t()``. CUDA only (Triton)."""
    from gemlite.core import TORCH_TO_DTYPE, GemLiteLinearTriton

    out_features, in_features = codes.shape
    layer = GemLiteLinearTriton(
        8,
        group_size=in_features // scales.shape[1],
        in_features=in_features,
        out_features=out_features,
        input_dtype=TORCH_TO_DTYPE[dtype],
        output_dtype=TORCH_TO_DTYPE[dtype],
    )
    layer.pack(codes, scales, zeros=None)  # int8: kept as codes.t(), scales (groups, out)
    if layer.W_q.untyped_storage().data_ptr() != codes.untyped_storage().data_ptr():
        raise RuntimeError("GemLite copied the int8 table: it would be stored twice")
    return layer


def tie_int8_table_(model: Any, head_factory: Any = int8_head) -> Any:
    """Replace a model's tied embedding/head table by one int8 copy (:func:`int8_rows`) that
    both read, in place: :class:`Int8Embedding` for the input, ``head_factory(codes, scales,
    dtype)`` for the output head (made first: if it fails, the model is as it was). Returns
    the model."""
    embed = model.get_input_embeddings()
    weight = embed.weight
    dtype = weight.dtype
    codes, scales = int8_rows(weight)
    head = head_factory(codes, scales, dtype)
    model.set_input_embeddings(
        Int8Embedding(codes, scales, dtype, getattr(embed, "embed_scale", None))
    )
    model.set_output_embeddings(head)
    embed.weight = None  # the full-precision table is done with
    return model
