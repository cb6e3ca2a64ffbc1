"""GemLite's uint4 layers compute what the CPU simulation of ``uint4`` computes.

``serifu.inference.quantize`` measures the quality of ``uint4`` reply weights on the CPU by
rounding the weights to the 4-bit grid and keeping them dequantised. This check, on a GPU,
packs the same codes into GemLite's A16W4 layers and compares their outputs (batch 1, 8 and
360 rows: its GEMV and GEMM kernels) with the dequantised weights' matmul in float32, with
GemLite's bf16 atomic adds (its default) and with float32 ones. For scale: rounding an output
to bf16 alone is a relative error of ~4e-3. The tied table's int8 head (GemLite's A16W8 over
``serifu.accel.int8_table``'s codes, line-3.6b's and gemma-3-270m's head shapes) is checked
the same way, with the embedding rows it gathers from the same codes.

    python bench/gpu/uint4_check.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def _rel_error(layer: torch.nn.Module, ref_w: torch.Tensor, m: int) -> float:
    """``layer`` on ``m`` random bf16 rows against their float32 product with ``ref_w``."""
    x = torch.randn(m, ref_w.shape[1], device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        got = layer(x).float()
    want = x.float() @ ref_w.float().t()
    return float((got - want).norm() / want.norm())


def _int8_table_rows() -> list[dict]:
    """The int8 head and embedding against the dequantised table, in float32."""
    from serifu.accel.int8_table import Int8Embedding, int8_dequantize, int8_head, int8_rows

    rows = []
    for vocab, hidden in ((51200, 3072), (262144, 640)):
        table = torch.randn(vocab, hidden, device="cuda", dtype=torch.bfloat16) * 0.02
        codes, scales = int8_rows(table)
        ref = int8_dequantize(codes, scales)
        head = int8_head(codes, scales, torch.bfloat16)
        embed = Int8Embedding(codes, scales, torch.bfloat16)
        ids = torch.randint(0, vocab, (1, 8), device="cuda")
        with torch.no_grad():
            gathered = embed(ids).float()
        rel = float((gathered - ref[ids]).norm() / ref[ids].norm())
        rows.append({"shape": [vocab, hidden], "embedding_rows": 8, "rel_error": round(rel, 5)})
        for m in (1, 8, 360):
            rel = _rel_error(head, ref, m)
            rows.append(
                {"shape": [vocab, hidden], "rows": m, "int8_head": True, "rel_error": round(rel, 5)}
            )
            print(f"int8 head {vocab}x{hidden} rows {m}: relative error {rel:.2e}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import gemlite

    from serifu.inference.quantize import gemlite_layer, uint4_dequantize, uint4_quantize

    torch.manual_seed(0)
    rows = _int8_table_rows()  # first: the 4-bit sweep below autotunes GemLite at length
    for native, (out_f, in_f) in [
        (native, shape)
        for native in (True, False)
        for shape in ((4096, 4096), (11008, 4096), (640, 2048))
    ]:
        gemlite.set_native_atomic_bfp16(native)
        linear = torch.nn.Linear(in_f, out_f, bias=False).to("cuda", torch.bfloat16)
        ref_w = uint4_dequantize(*uint4_quantize(linear.weight)).float()
        layer = gemlite_layer(linear)  # the product's packing, under this run's atomics
        for m in (1, 8, 360):
            rel = _rel_error(layer, ref_w, m)
            rows.append(
                {
                    "shape": [out_f, in_f],
                    "rows": m,
                    "bf16_atomics": native,
                    "rel_error": round(rel, 5),
                }
            )
            print(f"{out_f}x{in_f} rows {m} bf16 atomics {native}: relative error {rel:.2e}")
    worst = max(r["rel_error"] for r in rows)
    print(f"worst {worst:.2e} ({type(layer).__name__})")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "worst": worst}, indent=1))


if __name__ == "__main__":
    main()
