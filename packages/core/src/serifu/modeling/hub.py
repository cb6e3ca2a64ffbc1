"""Turning hub/offline failures into one clear user error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from serifu.errors import SerifuError


def offline_message(source: str, model_id: str) -> str:
    from serifu.paths import cache_dir

    return (
        f"could not load {source!r} ({model_id}): it is not on this machine and the Hugging Face "
        "hub cannot be reached (offline, HF_HUB_OFFLINE=1, or no network). Download it where "
        f"there is a network (`hf download {source} --local-dir DIR`) and pass that folder as "
        f"--model DIR"
        + (
            f", or copy it to {cache_dir() / 'models' / model_id} so the plugin id finds it."
            if "/" not in model_id
            else "."
        )
    )


@contextlib.contextmanager
def hub_errors(source: str, model_id: str) -> Iterator[None]:
    """Re-raise "not found locally and no hub" errors as :class:`SerifuError`."""
    try:
        yield
    except OSError as exc:  # transformers wraps hub failures (offline, 404, no network) in OSError
        if "/" in source and not source.startswith((".", "/")):
            raise SerifuError(offline_message(source, model_id)) from None
        raise SerifuError(f"could not load the model: {exc}", path=source) from None
