"""Rows of several heroines in one batch, each with her LoRA: stacked adapters, one gather.

PEFT's mixed-adapter batch (``adapter_names=[...]``) loops over the adapters present in
every LoRA layer: per adapter an index copy, a gather, two small matmuls and a scatter,
so a batch of 8 heroines launches ~8x the LoRA kernels of a one-adapter batch — on a GPU
the step becomes launch-bound. Here each LoRA layer holds all adapters stacked
(``A``: [n*r, in], ``B``: [n*r, out], scaling folded into B, ranks padded with zeros); a
batch sets a one-hot row weight [B, n] once, and every layer adds

    delta = ((x @ A.T).view(B, T, n, r) * w[:, None, :, None]).view(B, T, n*r) @ B

— two matmuls and a multiply, whatever the number of adapters (the extra FLOPs of the
n-1 zeroed adapters are those of rank n*r: negligible). The base layers run with
adapters disabled. A bare-base row has an all-zero weight.

The server keeps the hooks installed for good (:meth:`MixedLora.install`; even a
one-heroine batch or a bare-base batch goes through them) and gives each batch size one
row-weight buffer that is overwritten in place before each batch (:meth:`MixedLora.set_rows`),
so the static decoder's captured CUDA graphs (``serifu.accel.decode``) read the current
batch's adapters: one graph per batch shape serves every mix of heroines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any


class MixedLora:
    """The stacked adapters of a PEFT model (build with :meth:`for_model`)."""

    def __init__(self, layers: list[tuple[Any, Any, Any]], names: list[str], rank: int):
        self.layers = layers  # (lora module, A [n*r, in], B [n*r, out])
        self.names = names
        self.rank = rank
        self.weights: Any = None  # [B, n] of the running batch: one of ``_buffers``
        self._buffers: dict[int, Any] = {}  # batch size -> its row weights, reused in place
        self._installed: contextlib.ExitStack | None = None

    @classmethod
    def for_model(cls, model: Any) -> MixedLora | None:
        """Cached on the model; None when some LoRA layer is not plain LoRA on a linear
        layer (DoRA and other variants, fan-in-fan-out, embeddings): PEFT's loop then."""
        cache = model.__dict__.setdefault("_serifu_mixed_lora", {})
        names = list(getattr(model, "peft_config", {}))
        key = tuple(names)
        if key not in cache:
            for old in cache.values():  # adapters were added or removed: rebuild
                if old is not None:
                    old.uninstall(model)
            cache.clear()
            cache[key] = cls._build(model, names)
        return cache[key]

    @classmethod
    def _build(cls, model: Any, names: list[str]) -> MixedLora | None:
        import torch
        from peft.tuners.lora import LoraLayer

        modules: list[Any] = [m for m in model.modules() if isinstance(m, LoraLayer)]
        if not names or not modules:
            return None
        rank = 0
        for m in modules:
            if not hasattr(m, "lora_A") or getattr(m, "fan_in_fan_out", False):
                return None
            if getattr(m, "lora_variant", {}) or any(getattr(m, "use_dora", {}).values()):
                return None
            if m.lora_embedding_A or not all(n in m.lora_A for n in names):
                return None
            rank = max([rank, *(int(m.lora_A[n].weight.shape[0]) for n in names)])
        layers = []
        with torch.no_grad():
            for m in modules:
                a0 = m.lora_A[names[0]].weight
                out_features = m.lora_B[names[0]].weight.shape[0]
                a = torch.zeros(len(names), rank, a0.shape[1], dtype=a0.dtype, device=a0.device)
                b = torch.zeros(len(names), rank, out_features, dtype=a0.dtype, device=a0.device)
                for i, n in enumerate(names):
                    r = m.lora_A[n].weight.shape[0]
                    a[i, :r] = m.lora_A[n].weight
                    b[i, :r] = (m.lora_B[n].weight * m.scaling[n]).T.to(a0.dtype)
                layers.append((m, a.reshape(-1, a.shape[-1]), b.reshape(-1, out_features)))
        return cls(layers, names, rank)

    def _hook(self, a: Any, b: Any) -> Any:
        import torch
        import torch.nn.functional as F

        def add_lora(_module: Any, args: tuple[Any, ...], output: Any) -> Any:
            x = args[0]
            weights = self.weights
            if weights is None or x.shape[0] != weights.shape[0]:
                have = "no" if weights is None else weights.shape[0]
                raise RuntimeError(
                    f"a mixed-adapter batch of {have} rows got {x.shape[0]} "
                    "(set the rows' adapters first: MixedLora.set_rows)"
                )
            h = F.linear(x.to(a.dtype), a)
            lead = h.shape[:-1]
            h = h.view(*lead, len(self.names), self.rank) * weights.view(
                weights.shape[0], *([1] * (len(lead) - 1)), len(self.names), 1
            )
            if output.dtype == b.dtype and output.is_contiguous():  # add fused into the GEMM
                flat = torch.addmm(output.reshape(-1, b.shape[1]), h.reshape(-1, b.shape[0]), b)
                return flat.view(output.shape)
            return output + (h.reshape(*lead, -1) @ b).to(output.dtype)

        return add_lora

    # -- serving: hooks installed for good, row weights rewritten in place -----------------
    @property
    def installed(self) -> bool:
        return self._installed is not None

    def install(self, model: Any) -> None:
        """Keep the stacked hooks on every LoRA layer and PEFT's own adapters disabled until
        :meth:`uninstall`: every batch (one heroine's, the bare base's, a mix) goes through
        the stacked path, so a captured CUDA graph replays the right adapters for any batch.
        Cached static decoders captured before are dropped (they replay the old layers)."""
        if self._installed is not None:
            return
        stack = contextlib.ExitStack()
        stack.enter_context(model.disable_adapter())
        for m, a, b in self.layers:
            stack.callback(m.register_forward_hook(self._hook(a, b)).remove)
        self._installed = stack
        _drop_decoders(model)

    def uninstall(self, model: Any) -> None:
        """Remove the hooks, enable PEFT's adapters again, drop graphs captured with hooks."""
        if self._installed is None:
            return
        stack, self._installed = self._installed, None
        stack.close()
        self.weights = None
        _drop_decoders(model)

    def set_rows(self, row_adapters: Sequence[str | None]) -> Any:
        """Row i of the next batch uses ``row_adapters[i]`` (None: the bare base, weight 0).

        The weights go into this batch size's own buffer, overwritten in place (``copy_``),
        never replaced: a graph captured for this batch size reads the current weights."""
        import torch

        index = {n: i for i, n in enumerate(self.names)}
        rows = len(row_adapters)
        host = torch.zeros(rows, len(self.names))
        for row, name in enumerate(row_adapters):
            if name is not None:
                host[row, index[name]] = 1.0
        buffer = self._buffers.get(rows)
        if buffer is None:
            a = self.layers[0][1]
            buffer = self._buffers[rows] = torch.zeros(
                rows, len(self.names), dtype=a.dtype, device=a.device
            )
        buffer.copy_(host)
        self.weights = buffer
        return buffer

    def set_row(self, row: int, name: str | None) -> None:
        """Row ``row`` of the running batch uses ``name`` from its next step on (a request
        admitted into a running batch): written in place into the batch's buffer."""
        if self.weights is None:
            raise RuntimeError("no running batch (MixedLora.set_rows first)")
        self.weights[row].zero_()
        if name is not None:
            self.weights[row, self.names.index(name)] = 1.0

    @contextlib.contextmanager
    def alone(self, name: str | None) -> Iterator[None]:
        """A one-row pass with adapter ``name`` (an admitted prompt's prefill); the running
        batch's row weights are current again afterwards."""
        saved = self.weights
        self.set_rows([name])
        try:
            yield
        finally:
            self.weights = saved

    @contextlib.contextmanager
    def rows(self, model: Any, row_adapters: Sequence[str | None]) -> Iterator[None]:
        """While decoding: row i uses adapter ``row_adapters[i]`` (None: the bare base).
        Installs the hooks for this batch only, unless :meth:`install` keeps them."""
        temporary = self._installed is None
        if temporary:
            self.install(model)
        self.set_rows(row_adapters)
        try:
            yield
        finally:
            if temporary:
                self.uninstall(model)


def _drop_decoders(model: Any) -> None:
    """Forget the cached static decoders (``inference.decoding._static_decoder``): their
    graphs replay the LoRA layers as they were when captured; and the cached prompt
    prefixes (``serifu.accel.prefix``), computed through those layers."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    lm.__dict__.pop("_serifu_decoders", None)
    lm.__dict__.pop("_serifu_prefixes", None)  # cached prompt prefixes: keys and values too
