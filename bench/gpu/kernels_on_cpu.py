"""Serifu's Triton kernels checked without a GPU (session 34): each compiled to sm90 machine
code, and run in Triton's interpreter on the CPU against the ops' PyTorch references — the GEMV
(plain, a gated MLP's product in its output, ``glu``, or in its input, ``in_glu``) and the
split-key attention (its combine as a kernel of its own, or inside the partial kernel; and,
session 36, writing the new key and value into the cache itself). A check
that a kernel built where no GPU was lent compiles and computes what its reference does; its
speed needs the GPU (``decode_levers.py``, ``split_kv_sweep.py``).

Triton is no dependency of the CPU install; with a recent release (3.9 here) in a folder of
its own:

    python -m pip install --target /tmp/triton triton==3.9.0
    PYTHONPATH=/tmp/triton .venv/bin/python bench/gpu/kernels_on_cpu.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

COMPILE = "--compile" in sys.argv  # this process compiles; else it interprets, then compiles
if not COMPILE:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import torch  # noqa: E402 - triton reads TRITON_INTERPRET at import
import triton  # noqa: E402
import triton.language as tl  # noqa: E402, F401 - the interpreter resolves jit functions' tl here

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@triton.jit
def _noop():  # the interpreter has no grid dependency control (PDL)
    pass


class _OneConfig:
    """The GEMV's autotuner replaced by one configuration: the interpreter cannot benchmark."""

    def __init__(self, tuned: Any) -> None:
        self.tuned = tuned

    def __getitem__(self, grid: Any) -> Any:
        def run(*args: Any, **kw: Any) -> Any:
            kw.pop("launch_pdl", None)
            meta = {"BLOCK_N": 4, "BLOCK_K": 128}
            return self.tuned.fn[lambda _: grid(meta)](*args, **kw, **meta)

        return run


def compiled(failures: list[str]) -> None:
    """The GEMV's variants and the split-key partial kernel to sm90 machine code (cubin bytes
    each)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from serifu.accel import gemv_kernels

    sig = {"x_ptr": "*bf16", "w_ptr": "*bf16", "b_ptr": "*bf16", "nw_ptr": "*bf16"}
    sig |= {"sums_ptr": "*fp32", "y_ptr": "*bf16", "N": "i32", "K": "i32", "s_wn": "i32"}
    sig |= {"eps": "fp32"}
    for glu, xglu, pdl in (
        (0, 0, False),
        (3, 0, False),
        (0, 3, False),
        (0, 2, False),
        (0, 3, True),
    ):
        const = {"HAS_BIAS": True, "NORM": 0, "ACT": 0, "GLU": glu, "XGLU": xglu, "PDL": pdl}
        const |= {"BLOCK_N": 4, "BLOCK_K": 512}
        src = ASTSource(
            fn=gemv_kernels._gemv.fn,
            signature=sig | dict.fromkeys(const, "constexpr"),
            constexprs=const,
        )
        try:
            kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
            print(f"sm90 GEMV glu={glu} in_glu={xglu} pdl={pdl}: {len(kernel.asm['cubin'])} bytes")
        except Exception as exc:  # a kernel that does not compile: say which
            failures.append(f"GEMV glu={glu} in_glu={xglu} pdl={pdl}: {exc}")
    from serifu.accel import split_kv_kernels

    sig = dict.fromkeys(("q_ptr", "k_ptr", "v_ptr"), "*bf16") | {"m_ptr": "*i1"}
    sig |= {"acc_ptr": "*fp32", "ml_ptr": "*fp32", "count_ptr": "*i32", "o_ptr": "*bf16"}
    sig |= {"kn_ptr": "*bf16", "vn_ptr": "*bf16", "len_ptr": "*i64"}
    sig |= {"cos_ptr": "*bf16", "sin_ptr": "*bf16"}
    strides = ("s_qb", "s_qh", "s_kb", "s_kh", "s_kn", "s_vb", "s_vh", "s_vn", "s_mb", "s_mh")
    strides += ("s_ob", "s_oh", "s_nkb", "s_nkh", "s_nvb", "s_nvh", "s_cb")
    sig |= dict.fromkeys((*strides, "keys"), "i32") | {"scale": "fp32"}
    for fused, write, rope in (
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (True, True, False),
        (True, True, True),
    ):
        # stablelm-beta-7b's heads: 128 wide, 64 keys, 7 splits
        const = {"HEADS": 32, "GROUPS": 1, "DIM": 128, "PIECE": 128, "PIECES": 1}
        const |= {"BLOCK_N": 64, "CHUNK": 64, "SPLITS": 7, "BLOCK_S": 8, "MASK": 1, "FUSED": fused}
        const |= {"WRITE": write, "ROPE": rope}
        src = ASTSource(
            fn=split_kv_kernels._split_kv_partial,
            signature=sig | dict.fromkeys(const, "constexpr"),
            constexprs=const,
        )
        try:
            kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 2})
            print(
                f"sm90 split-key partial fused={fused} write={write} rope={rope}: "
                f"{len(kernel.asm['cubin'])} bytes"
            )
        except Exception as exc:
            failures.append(f"split-key partial fused={fused} write={write} rope={rope}: {exc}")


def interpreted(failures: list[str]) -> None:
    """Each kernel in the interpreter against the op's reference (bf16, small shapes)."""
    from serifu.accel import gemv_kernels, split_kv, split_kv_kernels
    from serifu.accel.gemv import GELU_TANH, SILU, gemv
    from serifu.accel.rope_fold import rotate

    for module in (gemv_kernels, split_kv_kernels):
        module.gdc_launch_dependents = _noop  # type: ignore[attr-defined]
        if hasattr(module, "gdc_wait"):
            module.gdc_wait = _noop  # type: ignore[attr-defined]
    gemv_kernels._gemv = _OneConfig(gemv_kernels._gemv)  # type: ignore[assignment]
    g = torch.Generator().manual_seed(0)

    def check(name: str, got: torch.Tensor, ref: torch.Tensor, rtol: float) -> None:
        err = float((got.float() - ref.float()).abs().max())
        scale = float(ref.float().abs().max())
        print(f"{name}: max error {err:.4g} (largest value {scale:.3g})")
        if err > rtol * scale + 1e-3:
            failures.append(f"{name}: {err:.4g} against {scale:.3g}")

    w = torch.randn(37, 300, generator=g).to(torch.bfloat16)
    b = torch.randn(37, generator=g).to(torch.bfloat16)
    x = torch.randn(300, generator=g).to(torch.bfloat16)
    out = torch.empty(37, dtype=torch.bfloat16)
    gemv_kernels.launch(x, w, b, out)
    check("GEMV", out, gemv(x.view(1, 1, -1), w, b).view(-1), 2e-2)
    for code in (SILU, GELU_TANH):
        x2 = torch.randn(600, generator=g).to(torch.bfloat16)
        for pdl in (False, True):
            gemv_kernels.launch(x2, w, b, out, in_glu=code, pdl=pdl)
            ref = gemv(x2.view(1, 1, -1), w, b, in_glu=code).view(-1)
            check(f"GEMV in_glu={code} pdl={pdl}", out, ref, 2e-2)
        half = torch.empty(20, dtype=torch.bfloat16)
        w2 = torch.randn(40, 300, generator=g).to(torch.bfloat16)
        gemv_kernels.launch(x, w2, None, half, glu=code)
        check(f"GEMV glu={code}", half, gemv(x.view(1, 1, -1), w2, None, glu=code).view(-1), 2e-2)
    split_kv_kernels.counters = lambda device, n: torch.zeros(max(n, 256), dtype=torch.int32)
    for heads, kv_heads, dim in ((4, 4, 128), (4, 1, 256), (4, 4, 96)):
        q = torch.randn(1, heads, 1, dim, generator=g).to(torch.bfloat16)
        k, v = (torch.randn(1, kv_heads, 200, dim, generator=g).to(torch.bfloat16) for _ in "kv")
        mask = (torch.arange(200) >= 70).view(1, 1, 1, 200)
        ref = split_kv.split_attention_reference(q.float(), k.float(), v.float(), mask, 0.1)
        block = split_kv.block_for(dim)
        splits, chunk = split_kv.plan(heads, 200, block_n=block)
        for fused in (False, True):
            o = torch.empty(1, 1, heads, dim, dtype=torch.bfloat16)
            split_kv_kernels.launch(q, k, v, mask, o, 0.1, splits, chunk, block, fused=fused)
            check(
                f"split-key {heads}x{dim} on {kv_heads}, {splits} splits, fused={fused}",
                o,
                ref,
                2e-2,
            )
        # the new key and value written by the kernel at the length less one (the update
        # advanced it; serifu.accel.kv_write); the chunk holding position 130 scores them
        # from registers after its loop. Masks: boolean, additive, none, and one hiding the
        # position itself (the kernel still writes it)
        kn, vn = (torch.randn(1, kv_heads, 1, dim, generator=g).to(torch.bfloat16) for _ in "kv")
        upto = (torch.arange(200) <= 130).view(1, 1, 1, 200)
        bias = (torch.randn(1, 1, 1, 200, generator=g) * 0.5).to(torch.bfloat16)
        masks: dict[str, torch.Tensor | None] = {
            "bool": mask & upto,
            "additive": bias.masked_fill(~(mask & upto), float("-inf")),
            "none": None,
            "own slot hidden": mask & upto & (torch.arange(200) != 130).view(1, 1, 1, 200),
        }
        kr, vr = k.clone(), v.clone()
        kr[:, :, 130:131], vr[:, :, 130:131] = kn, vn
        for kind, m in masks.items():
            ref = split_kv.split_attention_reference(q.float(), kr.float(), vr.float(), m, 0.1)
            for fused in (False, True):
                kc, vc = k.clone(), v.clone()
                o = torch.empty(1, 1, heads, dim, dtype=torch.bfloat16)
                length = torch.tensor(131)
                new = (kn, vn, length)
                split_kv_kernels.launch(
                    q, kc, vc, m, o, 0.1, splits, chunk, block, None, fused, new
                )
                name = f"split-key write {heads}x{dim} on {kv_heads}, {kind} mask, fused={fused}"
                check(name, o, ref, 2e-2)
                if not (torch.equal(kc, kr) and torch.equal(vc, vr) and int(length) == 131):
                    failures.append(f"{name}: cache or length wrong (length {int(length)})")
        # the query and new key unrotated, rotated by the kernel (serifu.accel.rope_fold):
        # in float32, rounded once to bf16, as inductor's rotary kernel rounds them
        angle = (torch.randn(1, 1, dim // 2, generator=g) * 3).repeat(1, 1, 2)
        cos, sin = angle.cos().to(torch.bfloat16), angle.sin().to(torch.bfloat16)
        q_rot, kn_rot = (
            rotate(x.float(), cos.float(), sin.float()).to(torch.bfloat16) for x in (q, kn)
        )
        kr[:, :, 130:131] = kn_rot
        ref = split_kv.split_attention_reference(
            q_rot.float(), kr.float(), vr.float(), masks["bool"], 0.1
        )
        for fused in (False, True):
            kc, vc = k.clone(), v.clone()
            o = torch.empty(1, 1, heads, dim, dtype=torch.bfloat16)
            new = (kn, vn, torch.tensor(131))
            split_kv_kernels.launch(
                q, kc, vc, masks["bool"], o, 0.1, splits, chunk, block, None, fused, new,
                rope=(cos, sin),
            )  # fmt: skip
            name = f"split-key write+rope {heads}x{dim} on {kv_heads}, fused={fused}"
            check(name, o, ref, 2e-2)
            stored = (kc[:, :, 130:131].float() - kn_rot.float()).abs().max().item()
            if stored > 2e-2 * kn_rot.float().abs().max().item() or not torch.equal(vc, vr):
                failures.append(f"{name}: the stored key is {stored:.3g} from the rotated one")


def main() -> None:
    failures: list[str] = []
    if COMPILE:
        compiled(failures)
    else:
        interpreted(failures)
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        if subprocess.run([sys.executable, __file__, "--compile"], env=env).returncode:
            failures.append("compiling: see above")
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        raise SystemExit(1)
    if not COMPILE:
        print("every kernel compiled and matched its reference")


if __name__ == "__main__":
    main()
