"""Serifu's decoding loop: left-padded batch, KV cache, stop at the reply's newline or EOS.

Each step yields the tokens chosen for every row still running; the caller decodes
and decides when a row is done (its text reached a newline), so streaming and batched
generation share one loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: str) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r))
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def _static_decoder(model: Any, batch: int, need: int) -> Any | None:
    """A cached :class:`StaticDecoder` (CUDA-graph steps) for a full-precision model on a GPU.

    Decoders are kept per (batch, length bucket) on the model, so the graph captured for the
    first reply serves the next ones; at most two are kept (each holds a KV cache).
    """
    import os

    import torch

    from serifu.accel.decode import StaticDecoder

    device = next(model.parameters()).device
    quantized = any(type(p).__name__ == "Params4bit" for p in model.parameters())
    if device.type != "cuda" or quantized or os.environ.get("SERIFU_STATIC_DECODE", "1") == "0":
        return None
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    max_len = -(-need // 256) * 256
    cache: dict[tuple[int, int], Any] = lm.__dict__.setdefault("_serifu_decoders", {})
    key = (batch, max_len)
    if key not in cache:
        while len(cache) >= 2:
            cache.pop(next(iter(cache)))
            torch.cuda.empty_cache()
        cache[key] = StaticDecoder(lm, max_len=max_len, batch_size=batch)
    else:
        cache[key] = cache.pop(key)  # most recently used last
    return cache[key]


def decode_steps(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    eos_ids: set[int],
    params: Mapping[str, Any],
    max_new_tokens: int,
    is_done: Callable[[int, list[int]], bool],
    seed: int | None = None,
) -> Iterator[list[list[int]]]:
    """Yield, after each step, every row's generated ids; rows stop at EOS or ``is_done``."""
    import torch

    device = str(next(model.parameters()).device)
    ids, mask = left_pad(prompts, pad_id, device)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    static = _static_decoder(model, len(prompts), ids.shape[1] + max_new_tokens)
    if static is not None:
        yield from _static_steps(
            static,
            ids,
            mask,
            pad_id=pad_id,
            eos_ids=eos_ids,
            params=params,
            max_new_tokens=max_new_tokens,
            is_done=is_done,
            generator=generator,
        )
        return
    generated: list[list[int]] = [[] for _ in prompts]
    running = [True] * len(prompts)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    seen = ids
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        for _ in range(max_new_tokens):
            chosen = next_tokens_for(out.logits[:, -1, :], seen, params, generator)
            chosen = torch.where(
                torch.tensor(running, device=device), chosen, torch.full_like(chosen, pad_id)
            )
            _record(chosen.tolist(), generated, running, eos_ids, is_done)
            yield generated
            if not any(running):
                return
            seen = torch.cat([seen, chosen[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            out = model(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=positions,
                cache=out.cache,  # transformers 5: `cache` (was past_key_values)
                use_cache=True,
            )


def _record(
    tokens: list[int],
    generated: list[list[int]],
    running: list[bool],
    eos_ids: set[int],
    is_done: Callable[[int, list[int]], bool],
) -> None:
    """Append each running row's new token; a row stops at EOS or when ``is_done``."""
    for row, token in enumerate(tokens):
        if not running[row]:
            continue
        if token in eos_ids:
            running[row] = False
            continue
        generated[row].append(token)
        if is_done(row, generated[row]):
            running[row] = False


def _static_steps(
    decoder: Any,
    ids: Any,
    mask: Any,
    *,
    pad_id: int,
    eos_ids: set[int],
    params: Mapping[str, Any],
    max_new_tokens: int,
    is_done: Callable[[int, list[int]], bool],
    generator: Any,
) -> Iterator[list[list[int]]]:
    """The same contract as the eager loop, on a static cache with CUDA-graph steps."""
    import torch

    generated: list[list[int]] = [[] for _ in range(ids.shape[0])]
    running = [True] * ids.shape[0]
    seen = ids

    def pick(logits: Any) -> Any:
        chosen = next_tokens_for(logits, seen, params, generator)
        return torch.where(
            torch.tensor(running, device=chosen.device), chosen, torch.full_like(chosen, pad_id)
        )

    steps = decoder.generate(ids, mask, max_new_tokens=max_new_tokens, pick=pick)
    for chosen in steps:
        _record(chosen.tolist(), generated, running, eos_ids, is_done)
        seen = torch.cat([seen, chosen[:, None]], dim=1)
        yield generated
        if not any(running):
            steps.close()
            return


def next_tokens_for(logits: Any, seen: Any, params: Mapping[str, Any], generator: Any) -> Any:
    from serifu.inference.sampling import next_tokens

    return next_tokens(logits, seen, params, generator)
