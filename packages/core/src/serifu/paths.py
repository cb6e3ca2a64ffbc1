"""Where Serifu keeps caches and user data."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Serifu's cache: ``$SERIFU_CACHE``, else ``$XDG_CACHE_HOME/serifu``, else ``~/.cache/serifu``."""
    if env := os.environ.get("SERIFU_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "serifu"


def data_dir() -> Path:
    """User data (game saves): ``$SERIFU_HOME``, else ``~/.local/share/serifu``."""
    if env := os.environ.get("SERIFU_HOME"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "serifu"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache that transformers would use."""
    if env := os.environ.get("HF_HUB_CACHE"):
        return Path(env)
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(home) / "hub"
