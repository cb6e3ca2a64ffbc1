"""Versions of the libraries a result depends on, recorded in run and report files."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

DEFAULT = ("serifu", "serifu-models", "torch", "transformers", "peft", "bitsandbytes")


def versions(dists: Iterable[str] = DEFAULT) -> dict[str, str]:
    """``{"python": ..., dist: version}`` for the installed ones among ``dists``."""
    out = {"python": platform.python_version()}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
