"""A start-up check for Serifu's own GPU kernels: run once on a small problem, compare with
PyTorch, and say why the kernel cannot serve (so its caller keeps PyTorch's kernel)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def kernel_error(
    run: Callable[[], tuple[torch.Tensor, torch.Tensor]], atol: float, rtol: float
) -> str | None:
    """``run`` returns the kernel's result and PyTorch's (float32, on the CPU). The error it
    raised (triton missing, no kernel image for this GPU...) or how far the results are apart;
    None when they match."""
    try:
        got, ref = run()
    except Exception as err:  # whatever the kernel raises: PyTorch's kernel serves instead
        first = str(err).splitlines()[0] if str(err) else ""
        return f"{type(err).__name__}: {first}"[:300]
    if not torch.allclose(got, ref, atol=atol, rtol=rtol):
        return f"its result differs from PyTorch's by {float((got - ref).abs().max()):.3g}"
    return None
