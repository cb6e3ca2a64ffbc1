"""The memory-bandwidth roofline of a decoded token.

At batch 1 a decode step reads every weight once (the embedding table is only gathered: one
row per token, so it is not counted, but the output head is read whole, tied or not) plus
the KV cache up to the current position. The fastest possible step is those bytes ÷ the
measured HBM bandwidth; a decoder's share of roofline = its tokens/s ÷ that rate.

    python bench/gpu/roofline.py            # prints the measured bandwidth
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def measure_bandwidth(gib: float = 4.0, repeats: int = 7) -> dict[str, float]:
    """HBM bandwidth in bytes/s: a device-to-device copy of a ``gib`` GiB bf16 tensor (reads
    and writes: 2× its bytes moved) and a read-only sum over it; medians of ``repeats``."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    n = int(gib * 2**30) // 2
    src = torch.ones(n, dtype=torch.bfloat16, device=dev)
    dst = torch.empty_like(src)

    def timed(fn: Any) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    copy_s = timed(lambda: dst.copy_(src))
    read_s = timed(lambda: src.sum(dtype=torch.float32))
    nbytes = n * 2
    out = {
        "copy_bytes_per_s": 2 * nbytes / copy_s,
        "read_bytes_per_s": nbytes / read_s,
        "tensor_gib": gib,
    }
    out["bytes_per_s"] = max(out["copy_bytes_per_s"], out["read_bytes_per_s"])
    return out  # the tensors are freed on return (the caller empties the CUDA cache)


def weight_bytes_per_token(model: Any) -> int:
    """Bytes of weights one decode step reads: all parameters (as stored: bf16, int4 with its
    scales, NF4 with its absmax) but the input embedding table; the head is always counted."""
    from serifu.inference.quantize import _head_is_tied, weight_bytes

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    total = weight_bytes(lm)
    embed = lm.get_input_embeddings()
    if embed is None or _head_is_tied(lm):
        return total  # tied: the table is read whole as the head
    return total - weight_bytes(embed)


def kv_bytes_per_token(model: Any, position: int, batch: int = 1) -> int:
    """Bytes of K and V one decode step reads at ``position`` (per row × ``batch``); a
    sliding-window layer reads at most its window."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    embed = lm.get_input_embeddings()  # its dtype is the cache's (an int8 table: its output's)
    itemsize = (getattr(embed, "dtype", None) or embed.weight.dtype).itemsize
    per_position = 2 * kv_heads * head_dim * itemsize
    total = 0
    for kind in types:
        length = min(position, window) if (kind == "sliding_attention" and window) else position
        total += per_position * length
    return total * batch


def roofline_tok_s(model: Any, bandwidth: float, position: int) -> float:
    """The batch-1 decode rate (tokens/s) if every step moved only its bytes at ``bandwidth``."""
    return bandwidth / (weight_bytes_per_token(model) + kv_bytes_per_token(model, position))


def main() -> None:
    bw = measure_bandwidth()
    print({k: (round(v / 1e9, 1) if k.endswith("per_s") else v) for k, v in bw.items()}, "GB/s")


if __name__ == "__main__":
    main()
