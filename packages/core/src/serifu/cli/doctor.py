"""``serifu doctor``: what is installed, what is missing, and how to fix it.

Nothing here lists distributions by name: the requirements come from the installed
metadata of ``serifu`` (its dependencies and extras) and of every plugin distribution,
and the default model from :func:`serifu.modeling.default_model` and its plugin.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path

import typer

from serifu.paths import cache_dir


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _check(ok: bool, label: str, detail: str, fix: str = "", optional: bool = False) -> bool:
    mark = "ok " if ok else ("-- " if optional else "MISSING")
    typer.echo(f"[{mark}] {label}: {detail}" + (f" -> {fix}" if (fix and not ok) else ""))
    return ok or optional


def requirements(dist: str) -> dict[str, list[str]]:
    """``dist``'s requirement names by extra ("" = always), from its installed metadata."""
    from packaging.requirements import InvalidRequirement, Requirement

    extras = metadata.metadata(dist).get_all("Provides-Extra") or []
    groups: dict[str, list[str]] = {}
    for raw in metadata.requires(dist) or []:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            groups.setdefault("", []).append(req.name)
            continue
        for extra in extras:  # a marker for another platform or Python matches none
            if req.marker.evaluate({"extra": extra}):
                groups.setdefault(extra, []).append(req.name)
                break
    return groups


def check_distribution(dist: str) -> bool:
    """One line for ``dist`` and each of its requirement groups; False when required ones lack."""
    ok = True
    for extra, names in requirements(dist).items():
        missing = [n for n in names if _version(n) is None]
        label = f"{dist}[{extra}]" if extra else f"{dist} requires"
        detail = (
            f"missing {', '.join(missing)}"
            if missing
            else ", ".join(f"{n} {_version(n)}" for n in names)
        )
        fix = f"pip install '{dist}[{extra}]'" if extra else f"pip install --force-reinstall {dist}"
        ok &= _check(not missing, label, detail, fix, optional=bool(extra))
    return ok


def _hub_cache() -> Path:
    from serifu.modeling.hub import hub_cache_dir

    return hub_cache_dir()


def _plugin_distributions() -> list[str]:
    from serifu import plugins

    names = {p.name for p in plugins.state().providers.values()}
    return sorted(n for n in names if n != "serifu" and _version(n) is not None)


def _torch_lines() -> None:
    import torch

    if torch.cuda.is_available():
        dev = f"CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    else:
        dev = "CPU only (training works in 4-bit on the CPU, slowly)"
    _check(True, "torch device", dev)
    typer.echo(f"[ok ] torch threads: {torch.get_num_threads()}")


def _bitsandbytes_line() -> bool:
    try:
        import bitsandbytes as bnb

        backends = getattr(bnb, "supported_torch_devices", None) or "cpu/cuda"
        return _check(True, "bitsandbytes backend", f"{bnb.__version__} ({backends})")
    except Exception as exc:  # bitsandbytes can fail at import on odd setups
        return _check(
            False, "bitsandbytes backend", f"import failed: {exc}", "reinstall bitsandbytes"
        )


def _default_model_line() -> bool:
    from serifu import plugins
    from serifu.errors import SerifuError
    from serifu.modeling import default_model

    try:
        model = default_model()
    except SerifuError as exc:
        return _check(False, "default model", str(exc))
    registered = plugins.base_models().get(model)
    if registered is None:
        return _check(True, f"default model ({model})", "not a plugin id: a folder or hub id")
    missing = getattr(registered.item, "missing", None)
    problem = missing() if callable(missing) else None
    detail = f"from {registered.provider.name} {registered.provider.version}"
    return _check(problem is None, f"default model ({model})", problem or detail)


def doctor() -> None:
    """Check Python, serifu's and its plugins' requirements, torch's device, caches, the default model."""
    from serifu import __version__, plugins

    all_ok = _check(
        sys.version_info >= (3, 11), "python", platform.python_version(), "use Python >= 3.11"
    )
    _check(True, "serifu", __version__)
    all_ok &= check_distribution("serifu")
    for dist in _plugin_distributions():
        _check(True, f"plugin {dist}", _version(dist) or "?")
        all_ok &= check_distribution(dist)
    for failure in plugins.failed():
        all_ok &= _check(False, f"plugin {failure.plugin}", failure.error)
    if importlib.util.find_spec("torch") is not None:
        _torch_lines()
    if importlib.util.find_spec("bitsandbytes") is not None:
        all_ok &= _bitsandbytes_line()
    for label, path in [("serifu cache", cache_dir()), ("hub cache", _hub_cache())]:
        probe = path if path.exists() else next((p for p in path.parents if p.exists()), path)
        free = shutil.disk_usage(probe).free / 2**30
        _check(
            True,
            label,
            f"{path} ({'exists' if path.exists() else 'not created yet'}; {free:.1f} GiB free)",
        )
    all_ok &= _default_model_line()
    typer.echo(
        "All required pieces are present." if all_ok else "Some pieces are missing (see above)."
    )
    if not all_ok:
        raise typer.Exit(1)
