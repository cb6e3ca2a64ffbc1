"""Turning hub failures (offline, gated, misspelled) into one clear user error, fast.

``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once, at import, and retries failed requests
with backoff (about 23 s per file when the network is down). So before loading a hub
id, we check offline mode *now* and whether the hub answers at all (one TCP connect);
when it does not, a model missing from the local cache fails at once, and a cached one
loads with the hub switched to offline mode (no retries).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from serifu.errors import SerifuError

PROBE_SECONDS = 3.0
"""How long the hub may take to accept a TCP connection before it counts as unreachable."""


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


def is_hub_id(source: str) -> bool:
    """``owner/name`` that is not a local path."""
    return "/" in source and not source.startswith((".", "/", "~")) and not Path(source).exists()


def offline_requested() -> bool:
    """``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` as set now (not at import time)."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether the hub endpoint accepts a TCP connection within ``timeout`` (DNS included)."""
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    ok: list[bool] = []

    def probe() -> None:  # in a thread: getaddrinfo itself has no timeout
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout):
            ok.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def in_local_cache(source: str) -> bool:
    """Whether the Hugging Face cache holds ``source``'s ``config.json``."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(source, "config.json"), str)


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Switch ``huggingface_hub`` (and so transformers) to offline mode for a while."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache transformers reads (``huggingface_hub``'s own setting)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hub_error(exc: BaseException) -> BaseException | None:
    """The ``huggingface_hub`` error behind ``exc`` (transformers wraps them in ``OSError``)."""
    from huggingface_hub import errors

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, errors.HfHubHTTPError | errors.LocalEntryNotFoundError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def hub_message(exc: BaseException, source: str, model_id: str) -> str:
    """What went wrong with hub id ``source``: gated, not found, or not reachable (offline)."""
    from huggingface_hub import errors

    cause = _hub_error(exc)
    if cause is None or isinstance(cause, errors.LocalEntryNotFoundError):
        return offline_message(source, model_id)  # not cached, and no hub to ask
    if isinstance(cause, errors.GatedRepoError):
        return (
            f"{source!r} ({model_id}) is a gated repository: accept its terms on its hub page, "
            "then log in here (`hf auth login`) or download it where you can and pass the "
            "folder as --model DIR"
        )
    if isinstance(cause, errors.RepositoryNotFoundError):
        return (
            f"the hub has no repository {source!r} ({model_id}) that you can see: check the "
            "spelling, or log in (`hf auth login`) if it is private"
        )
    if isinstance(cause, errors.RevisionNotFoundError | errors.EntryNotFoundError):
        return f"{source!r} ({model_id}) lacks the requested revision or file: {cause}"
    return offline_message(source, model_id)


@contextlib.contextmanager
def hub_errors(source: str, model_id: str) -> Iterator[None]:
    """Fail fast when a hub id cannot be had; re-raise load errors as :class:`SerifuError`.

    ``huggingface_hub``'s error types tell a gated or misspelled repository apart from
    being offline (each gets its own message).
    """
    offline = is_hub_id(source) and (offline_requested() or not hub_reachable())
    if offline and not in_local_cache(source):
        raise SerifuError(offline_message(source, model_id))
    try:
        with _hub_offline() if offline else contextlib.nullcontext():
            yield
    except OSError as exc:  # transformers wraps hub failures (offline, 404, gated) in OSError
        if is_hub_id(source):
            raise SerifuError(hub_message(exc, source, model_id)) from None
        raise SerifuError(f"could not load the model: {exc}", path=source) from None
