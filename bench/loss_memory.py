#!/usr/bin/env python3
"""Peak memory and time of the frozen output head's loss and gradient, per path.

The training loss projects the labelled hidden states through the frozen head a chunk at
a time (``serifu.accel.loss``); this measures what one step's loss costs on top of the
activations, for a base's real head shape (gemma-3-270m: 262,144 x 640, bf16 weights):
  closed-form   the product's path: (softmax - onehot) @ W in place, one float32 buffer
  autograd      the gradient taken in forward through autograd (the path before session 18)
  checkpointed  chunks checkpointed and recomputed in backward (train.FUSED_HEAD off)
Each path runs in a fresh process. On the CPU the peak is the process's resident-set
high-water mark above its level before the loss (big tensors are mmapped, so they show);
on CUDA it is ``torch.cuda.max_memory_allocated`` above the allocated memory before.

    python bench/loss_memory.py [--tokens 2048] [--repeats 3] [--device cpu|cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peak_memory import begin, child_row, peak_above, write_record

PATHS = ("closed-form", "autograd", "checkpointed")
HEADS = {"gemma-3-270m": (262_144, 640, None), "gemma-2-style-softcap": (262_144, 640, 30.0)}


def one_path(path: str, head_name: str, tokens: int, repeats: int, device: str) -> dict:
    """Run one path ``repeats`` times in this process; peak of the first run, time median."""
    import torch

    from serifu.accel.loss import LinearHead, chunked_lm_loss
    from serifu.training.loss import CHUNK_BYTES

    torch.manual_seed(0)
    torch.set_num_threads(2)
    vocab, dim, softcap = HEADS[head_name]
    weight = torch.empty(vocab, dim, dtype=torch.bfloat16, device=device).normal_(0, 0.02)
    head = torch.nn.Linear(dim, vocab, bias=False, device=device, dtype=torch.bfloat16)
    head.weight = torch.nn.Parameter(weight, requires_grad=False)

    def to_logits(h: torch.Tensor) -> torch.Tensor:
        logits = head(h)
        return torch.tanh(logits / softcap) * softcap if softcap else logits

    chunk = max(256, CHUNK_BYTES // (4 * vocab))
    linear = LinearHead(head.weight, None, softcap) if path == "closed-form" else None
    hidden = torch.empty(1, tokens + 1, dim, dtype=torch.bfloat16, device=device).normal_()
    labels = torch.randint(0, vocab, (1, tokens + 1), device=device)
    cuda = device.startswith("cuda")
    peaks, seconds, losses = [], [], []
    for _ in range(repeats):
        h = hidden.detach().requires_grad_(True)
        before = begin(device)
        start = time.perf_counter()
        total, n = chunked_lm_loss(
            h,
            labels,
            to_logits,
            chunk_tokens=chunk,
            head_frozen=path != "checkpointed",
            linear=linear,
        )
        (total / n).backward()
        peaks.append(peak_above(device, before))
        seconds.append(time.perf_counter() - start)
        losses.append(float(total) / n)
        del h, total
    return {
        "path": path,
        "head": head_name,
        "tokens": tokens,
        "chunk_tokens": chunk,
        "float32_logits_mib_per_chunk": round(chunk * vocab * 4 / 2**20, 1),
        # the CPU's high-water mark only rises: the first run's is the one that measures
        "peak_mib": round((peaks[0] if not cuda else statistics.median(peaks)) / 2**20, 1),
        "seconds_median": round(statistics.median(seconds[1:] or seconds), 3),
        "seconds": [round(s, 3) for s in seconds],
        "mean_loss": round(losses[0], 6),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048, help="labelled tokens in the step")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--heads", default="gemma-3-270m", help=f"comma list of {', '.join(HEADS)}")
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: PATH:HEAD in this process
    args = ap.parse_args()
    if args.one:
        path, head = args.one.split(":")
        print(json.dumps(one_path(path, head, args.tokens, args.repeats, args.device)))
        return 0
    rows = []
    for head in args.heads.split(","):
        for path in args.paths.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--one",
                f"{path}:{head}",
                "--tokens",
                str(args.tokens),
            ]
            cmd += ["--repeats", str(args.repeats), "--device", args.device]
            row = child_row(cmd)
            rows.append(row)
            print(
                f"{head:24} {path:13} peak {row['peak_mib']:8.1f} MiB  "
                f"{row['seconds_median']:7.3f} s  loss {row['mean_loss']:.6f}",
                flush=True,
            )
    write_record(
        args.out, "loss_memory", args.device, rows, tokens=args.tokens, repeats=args.repeats
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
