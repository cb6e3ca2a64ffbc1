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
decoder's CUDA graph; configurations autotuned per shape in its warm-up steps); anything else
(prompts, training, the CPU) is ``nn.Linear``'s own forward. :func:`drop_gemv` switches back.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import torch


@torch.library.custom_op("serifu::gemv", mutates_args=())
def gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` for an ``x`` of one row (any leading dims of size 1): the Triton kernel on
    CUDA, ``F.linear`` elsewhere."""
    if not x.is_cuda:
        return torch.nn.functional.linear(x, weight, bias)
    from serifu.accel import gemv_kernels

    out = torch.empty(*x.shape[:-1], weight.shape[0], device=x.device, dtype=x.dtype)
    gemv_kernels.launch(x.reshape(-1).contiguous(), weight, bias, out.view(-1))
    return out


@gemv.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


class GemvLinear(torch.nn.Linear):
    """``nn.Linear`` whose one-row CUDA inputs under ``no_grad`` run :func:`gemv`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and x.numel() == x.shape[-1] and not torch.is_grad_enabled():
            return gemv(x, self.weight, self.bias)
        return super().forward(x)


def _eligible(module: Any, head: Any) -> bool:
    w: Any = getattr(module, "weight", None)
    return (
        type(module) is torch.nn.Linear
        and module is not head
        and type(w) in (torch.nn.Parameter, torch.Tensor)  # not None, nor a quantised subclass
        and w.dtype in (torch.bfloat16, torch.float16)
        and w.stride(-1) == 1
    )


@functools.cache
def kernel_error(device: str) -> str | None:
    """Why the kernel cannot serve on ``device`` (None: a small product, bias included, ran
    and matched ``F.linear`` in float32). Checked once per device, so that a GPU or Triton
    release it does not run on keeps cuBLAS."""
    from serifu.accel.kernel_check import kernel_error as check

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*shape, generator=g) for shape in ((1, 1, 300), (37, 300), (37,)))
        on = [t.to(device, torch.bfloat16) for t in (x, w, b)]
        ref = torch.nn.functional.linear(*(t.float().cpu() for t in on))
        return gemv(*on).float().cpu(), ref

    return check(run, atol=5e-2, rtol=2e-2)


def use_gemv(model: Any) -> int:
    """Switches the model's plain half-precision linear layers (not its output head) to
    :class:`GemvLinear`; returns how many (0, with a one-line notice, on a device where
    :func:`kernel_error` found the kernel failing)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    layers = [m for m in model.modules() if _eligible(m, head)]
    error = kernel_error(str(layers[0].weight.device)) if layers else None
    if error is not None:
        print(f"note: replies use cuBLAS (the Triton GEMV failed: {error})", file=sys.stderr)
        return 0
    for m in layers:
        m.__class__ = GemvLinear
    return len(layers)


def drop_gemv(model: Any) -> int:
    """Switches :class:`GemvLinear` layers back to ``nn.Linear``; returns how many."""
    layers: list[Any] = [m for m in model.modules() if type(m) is GemvLinear]
    for m in layers:
        m.__class__ = torch.nn.Linear
    return len(layers)
