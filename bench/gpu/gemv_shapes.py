"""Batch-1 GEMV kernels on one model's layer shapes: µs per call and bandwidth reached.

For each (out, in) shape of the model's linear layers, one row (``x``: 1 × in, bf16):
``bf16`` (cuBLAS, ``F.linear``), ``serifu`` (Serifu's bf16 GEMV, :mod:`serifu.accel.gemv`),
``uint4s`` (the same ``uint4`` codes on Serifu's GEMV, :mod:`serifu.accel.uint4_gemv`),
``uint4s-v2*`` (session 27's second version, bench-only: :mod:`bench.gpu.uint4_v2`),
``gemlite`` (GemLite's A16W4 layer on ``uint4`` codes, float32 atomics as the product sets
them), and the ``uint4`` codes as PyTorch expressions compiled by inductor: ``torch``
(:class:`bench.gpu.uint4_torch.Uint4Linear`'s decode expression, inputs interleaved in the
bytes) and ``halves`` (the low nibbles hold the first 32
inputs of a group, the high nibbles the next 32: no interleaving for inductor to index), each
with and without coordinate-descent tuning; ``int8`` / ``int8-gN`` (the ``uint4`` path's tied
table as the head: GemLite's 8-bit layer over ``serifu.accel.int8_table``'s codes, scales per
32 or N columns). Timed by ``triton.testing.do_bench_cudagraph``
(medians); bandwidth = bytes of weights read ÷ time, against the measured HBM bandwidth.

    python3 bench/gpu/gemv_shapes.py --model line-3.6b --out $OUT/gemv.json
    python3 bench/gpu/gemv_shapes.py --shapes 51200x3072 --kernels bf16,int8,int8-g128 --out …
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.uint4_torch import Uint4Linear, uint4_layer, unpack_uint4

SHAPES = {  # (out, in) of each distinct linear layer per decoder layer, and the head
    "line-3.6b": [(9216, 3072), (3072, 3072), (12288, 3072), (3072, 12288), (51200, 3072)],
    "stablelm-beta-7b": [(4096, 4096), (11008, 4096), (4096, 11008), (65024, 4096)],
}


def _halves_pack(codes: torch.Tensor) -> torch.Tensor:
    out, n = codes.shape
    g = codes.view(out, n // 64, 2, 32).to(torch.uint8)
    return (g[:, :, 0] | (g[:, :, 1] << 4)).reshape(out, n // 2)


def _halves(
    x: torch.Tensor, packed: torch.Tensor, s: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    out = packed.shape[0]
    p = packed.view(out, -1, 32)
    lo = ((p & 15).float() - z.float()[..., None]) * s.float()[..., None]
    hi = ((p >> 4).float() - z.float()[..., None]) * s.float()[..., None]
    xs = x.float().view(1, -1, 2, 32)
    y = (xs[:, None, :, 0] * lo).sum((-1, -2)) + (xs[:, None, :, 1] * hi).sum((-1, -2))
    return y.to(x.dtype)


def _no_grad(layer: Any, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():  # a one-row product runs the GEMV only outside autograd
        return layer(x)


def _candidates(
    lin: torch.nn.Linear, q: Uint4Linear, x: torch.Tensor, kernels: list[str]
) -> dict[str, Any]:
    """name -> (call, bytes of weights it reads) for the asked kernels; ``q``: ``lin``'s
    uint4 codes."""
    n_out, n_in = lin.weight.shape
    bytes4 = q.packed.numel() + 2 * q.scales.numel() * 2
    cands: dict[str, Any] = {}
    if "bf16" in kernels:
        cands["bf16"] = (lambda: F.linear(x, lin.weight), n_out * n_in * 2)
    if "serifu" in kernels:  # Serifu's bf16 GEMV (serifu.accel.gemv), the decoder's default
        from serifu.accel.gemv import gemv

        cands["serifu"] = (lambda: gemv(x, lin.weight, None), n_out * n_in * 2)
    if "uint4s" in kernels:  # the same codes on Serifu's uint4 GEMV (serifu.accel.uint4_gemv)
        from serifu.accel.uint4_gemv import Uint4Linear as SerifuUint4

        s4 = SerifuUint4.from_linear(lin)
        nbytes_s = s4.packed.numel() * s4.packed.element_size() + 2 * s4.scale.numel() * 2
        cands["uint4s"] = (lambda: _no_grad(s4, x), nbytes_s)
    if any(k.startswith("uint4s-v2") for k in kernels):  # session 27's v2, bench-only
        from bench.gpu.uint4_v2 import candidates

        cands |= candidates(lin, x, kernels)
    for k in kernels:  # the tied table's head on the uint4 path (serifu.accel.int8_table):
        if k != "int8" and not k.startswith("int8-g"):  # int8-gN: scales per N columns
            continue
        from serifu.accel.int8_table import INT8_GROUP, int8_dequantize, int8_head, int8_rows

        group = min(int(k[6:]) if k.startswith("int8-g") else INT8_GROUP, n_in)
        codes, scales = int8_rows(lin.weight, group)
        h8 = int8_head(codes, scales, torch.bfloat16)
        ref8 = F.linear(x.float(), int8_dequantize(codes, scales))
        nbytes8 = codes.numel() + 4 * scales.numel()
        cands[k] = (lambda h8=h8: h8(x), nbytes8, ref8)
    if any(k.startswith("gemlite") for k in kernels):
        import gemlite

        from serifu.inference.quantize import gemlite_layer

        gemlite.set_native_atomic_bfp16(False)  # float32 atomics, as the product sets them
        gl = gemlite_layer(lin)
        for k in kernels:
            if k == "gemlite":  # the library's own choice for one row (GEMV_REVSPLITK)
                cands[k] = (lambda: gl(x), bytes4)
            elif k.startswith("gemlite-"):  # a GemLite kernel type forced
                kind = k.split("-", 1)[1].upper()
                cands[k] = (lambda kind=kind: gl.forward_manual(x, matmul_type=kind), bytes4)
    hp = _halves_pack(unpack_uint4(q.packed))
    for cdt in (False, True):
        tag = "-cdt" if cdt else ""
        opts: dict[str, Any] = {"coordinate_descent_tuning": cdt}
        if "torch" + tag in kernels:
            f_torch = torch.compile(q.forward, dynamic=False, options=opts)
            cands["torch" + tag] = (lambda f=f_torch: f(x), bytes4)
        if "halves" + tag in kernels:
            f_halves = torch.compile(_halves, dynamic=False, options=opts)
            cands["halves" + tag] = (lambda f=f_halves: f(x, hp, q.scales, q.zeros), bytes4)
    return cands


def _shape_rows(
    n_out: int, n_in: int, bw: float, kernels: list[str], tag: str
) -> list[dict[str, Any]]:
    """Every asked kernel's row for one (out, in) shape."""
    from triton.testing import do_bench_cudagraph

    rows: list[dict[str, Any]] = []
    torch.manual_seed(0)
    lin = torch.nn.Linear(n_in, n_out, bias=False, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(1, n_in, device="cuda", dtype=torch.bfloat16)
    q = uint4_layer(lin, 64)
    ref = F.linear(x.float(), q.dequantized())
    try:
        cands = _candidates(lin, q, x, kernels)
    except Exception as exc:
        return [{"shape": [n_out, n_in], "error": f"{type(exc).__name__}: {exc}"[:300]}]
    for name, (fn, nbytes, *own_ref) in cands.items():  # own_ref: a kernel of another grid
        row: dict[str, Any] = {"shape": [n_out, n_in], "kernel": name + tag}
        want = own_ref[0] if own_ref else ref
        try:
            y = fn()
            row["rel_err"] = round(((y.float() - want).abs().max() / want.abs().max()).item(), 5)
            us = do_bench_cudagraph(fn, rep=200) * 1e3
            row |= {
                "us": round(us, 2),
                "tb_s": round(nbytes / us / 1e6, 3),
                "bw_share": round(nbytes / us / 1e-6 / bw, 3),
            }
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="line-3.6b")
    ap.add_argument("--kernels", default="bf16,gemlite,torch,halves,torch-cdt,halves-cdt")
    ap.add_argument(
        "--gemlite-passes",
        default="",
        help="further passes over the shapes with GemLite re-set: h100 (its shipped H100 "
        "autotune cache; an H200's name matches none), max (its widest autotune)",
    )
    ap.add_argument(
        "--shapes", default="", help="OUTxIN,... instead of the model's (e.g. its head alone)"
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    shapes = SHAPES[args.model]
    if args.shapes:
        shapes = [tuple(int(v) for v in sh.split("x")) for sh in args.shapes.split(",")]
    from bench.gpu.common import versions
    from bench.gpu.roofline import measure_bandwidth

    t0 = time.perf_counter()
    bw = measure_bandwidth()["bytes_per_s"]
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {
        "model": args.model,
        "versions": versions(),
        "bandwidth_gb_s": round(bw / 1e9, 1),
        "rows": rows,
    }
    kernels = args.kernels.split(",")
    for n_out, n_in in shapes:
        rows.extend(_shape_rows(n_out, n_in, bw, kernels, ""))
        args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    glk = [k for k in kernels if k.startswith("gemlite")]
    for mode in filter(None, args.gemlite_passes.split(",")):
        import gemlite
        from gemlite.core import GemLiteLinearTriton

        if mode == "h100":
            cfg = Path(gemlite.__file__).parent / "configs" / "h100.json"
            out[f"gemlite_{mode}_loaded"] = bool(GemLiteLinearTriton.load_config(str(cfg)))
        elif mode == "max":
            GemLiteLinearTriton.reset_config()
            gemlite.set_autotune("max")
        for n_out, n_in in shapes:
            rows.extend(_shape_rows(n_out, n_in, bw, glk, f" ({mode})"))
            args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
