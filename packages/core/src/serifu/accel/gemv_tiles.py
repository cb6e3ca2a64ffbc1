"""Which launch configuration Serifu's GEMV kernels run each shape with: one per shape,
chosen by rule, so that a reply's sums come out the same in every process.

A configuration sets the order of a row's float32 sums, so two configurations can round an
output to different bf16 values, and with near-tied logits a greedy pick can follow. Until
session 39 ``triton.autotune`` timed every configuration in each process and kept the
fastest: two fresh processes on one H100 kept different ones and gave different greedy
replies (stablelm-beta-7b, ``bench/gpu/same_reply.py``), where two processes with one
configuration per shape gave the same. So each shape now gets one configuration from
:func:`gemv_tile` / :func:`uint4_tile`, the same on every card; the autotuners are handed that
one alone and time nothing. ``SERIFU_GEMV_TUNE=1`` hands them all again (the fastest on this
card, the sums as they fall). The rules come from every configuration timed at the four
shipped models' shapes on an H100 (``bench/gpu/gemv_configs.py``, session 39).

Pure Python (no Triton): the rules are tested on the CPU.
"""

from __future__ import annotations

import os

# the bf16 GEMV (serifu.accel.gemv_kernels): (rows a program, inputs a step, warps)
GEMV_TILES = (
    (2, 1024, 4),
    (4, 512, 4),
    (4, 1024, 4),
    (4, 1024, 8),
    (8, 256, 4),
    (8, 512, 4),
    (8, 512, 8),
    (16, 256, 4),
    (16, 512, 8),
)
# the uint4 GEMV (serifu.accel.uint4_gemv_kernels): (word-rows a program, 16-byte loads a
# thread a step, warps); prefetching the next step's words only with one word-row, 2+ warps
UINT4_TILES = (
    (1, 4, 1),
    (1, 4, 2),
    (1, 4, 4),
    (1, 8, 2),
    (1, 8, 4),
    (2, 4, 1),
    (2, 4, 2),
    (2, 8, 2),
)


def tuning() -> bool:
    """Whether the kernels' autotuners time every configuration (``SERIFU_GEMV_TUNE=1``)
    instead of running each shape's one configuration."""
    return os.environ.get("SERIFU_GEMV_TUNE", "0") == "1"


def gemv_tile(rows: int, width: int) -> tuple[int, int, int]:
    """The bf16 GEMV's ``(BLOCK_N, BLOCK_K, warps)`` for ``rows`` outputs over ``width`` inputs
    (a gated pair's rows counted once: a program takes rows of both halves). Where rows do not
    outnumber inputs (attention outputs, MLP down projections): 2 rows of 1,024 inputs a step;
    more rows over inputs of 3,072 or fewer (line-3.6b, gemma-3-270m): 256 inputs a step, 16
    rows where there are 8,192 or more, else 8; over wider inputs: 4 rows of 512. On an H100
    this costs 0.5-1.7 % of the GEMVs' time against the fastest configuration of each shape
    (session 39); on an H200 2.5 % (stablelm-beta-7b) and 4.8 % (novel-gptj-6b, whose tall
    products run fastest there with 256 inputs a step: 2.8 % of its replies, session 40). No
    single configuration per shape does better on both cards."""
    if rows <= width:
        return (2, 1024, 4)
    if width <= 3072:
        return (16, 256, 4) if rows >= 8192 else (8, 256, 4)
    return (4, 512, 4)


def uint4_tile(rows: int, width: int) -> tuple[int, int, int, bool]:
    """The uint4 GEMV's ``(BW, U, warps, prefetch)`` for ``rows`` outputs over ``width``
    inputs: where rows do not outnumber inputs, one word-row a program over 4 warps, the next
    step's words loaded ahead; else two word-rows over 2 warps (line-3.6b's shapes on an H100,
    session 39)."""
    return (1, 4, 4, True) if rows <= width else (2, 4, 2, False)
