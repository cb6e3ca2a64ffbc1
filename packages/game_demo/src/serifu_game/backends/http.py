"""The ``http`` backend: her replies from a ``serifu serve`` server (``serifu play --server URL``).

The game and the model may then run on different machines. It speaks the OpenAI chat API
(streamed), so any compatible server that serves her id as a model works too. Closing the
stream when the player cancels makes the server stop generating.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError


class HttpBackend:
    """Streams her reply from an OpenAI-compatible server."""

    kind = "http"

    def __init__(
        self,
        url: str,
        character: str,
        *,
        max_new_tokens: int = 48,
        api_key: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.url = url.rstrip("/").removesuffix("/v1")
        self.character = character
        self.max_new_tokens = max_new_tokens
        self.api_key = api_key
        self.timeout = timeout
        self.label = f"サーバー {self.url}"
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _client(self) -> Any:
        try:
            import httpx
        except ImportError:
            raise SerifuError(
                "serifu play --server needs httpx: pip install 'serifu-game[http]'"
            ) from None
        return httpx.Client(base_url=self.url, headers=self._headers(), timeout=self.timeout)

    def prepare(self) -> None:
        """Check the server answers and serves her (raises SerifuError with the reason)."""
        import httpx

        with self._client() as client:
            try:
                r = client.get("/v1/models")
            except httpx.HTTPError as exc:
                raise SerifuError(f"cannot reach the server {self.url} ({exc})") from None
        if r.status_code != 200:
            raise SerifuError(f"the server {self.url} answered {r.status_code}: {_message(r.text)}")
        served = [m.get("id") for m in r.json().get("data", [])]
        if self.character not in served:
            raise SerifuError(
                f"the server {self.url} does not serve {self.character!r} (it serves: {', '.join(map(str, served))})"
            )
        self._ready = True

    def messages(self, query: str, history: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for user_line, reply in history:
            out += [{"role": "user", "content": user_line}, {"role": "assistant", "content": reply}]
        out.append({"role": "user", "content": query})
        return out

    def stream(
        self, query: str, history: Sequence[tuple[str, str]], cancel: threading.Event
    ) -> Iterator[str]:
        import httpx

        body = {
            "model": self.character,
            "messages": self.messages(query, history),
            "max_tokens": self.max_new_tokens,
            "stream": True,
        }
        with self._client() as client:
            try:
                with client.stream("POST", "/v1/chat/completions", json=body) as r:
                    if r.status_code != 200:
                        raise SerifuError(
                            f"the server answered {r.status_code}: {_message(r.read().decode())}"
                        )
                    for line in r.iter_lines():
                        if cancel.is_set():
                            return  # closing the stream cancels the generation
                        piece = _delta(line)
                        if piece:
                            yield piece
            except httpx.HTTPError as exc:
                raise SerifuError(f"lost the connection to {self.url} ({exc})") from None

    def debug_info(self, query: str, history: Sequence[tuple[str, str]]) -> str:
        messages = json.dumps(self.messages(query, history), ensure_ascii=False, indent=1)
        return f"POST {self.url}/v1/chat/completions model={self.character}\n{messages}"


def _delta(line: str) -> str:
    if not line.startswith("data:"):
        return ""
    data = line.removeprefix("data:").strip()
    if data == "[DONE]":
        return ""
    chunk = json.loads(data)
    if "error" in chunk:
        raise SerifuError(f"the server failed: {chunk['error'].get('message')}")
    choices = chunk.get("choices") or []
    return str((choices[0].get("delta") or {}).get("content") or "") if choices else ""


def _message(text: str) -> str:
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:200]


def server_game(url: str, api_key: str | None = None) -> Any:
    """``SerifuGame`` whose heroines answer from the server at ``url`` (``play --server``)."""
    from serifu_game.app import SerifuGame
    from serifu_game.backends import BackendChoice

    class ServerGame(SerifuGame):
        CSS_PATH = _css_path(SerifuGame)

        def rebuild_backend(self) -> None:
            assert self.pack is not None
            self.choice = BackendChoice(
                "http", model=url, notice=f"サーバーモード：{url} の {self.pack.id} と話します。"
            )
            self.backend = HttpBackend(
                url, self.pack.id, max_new_tokens=self.settings.max_new_tokens, api_key=api_key
            )

    return ServerGame


def _css_path(cls: Any) -> str:
    """The base class's stylesheet as an absolute path (a relative one resolves per module)."""
    import inspect

    return str(Path(inspect.getfile(cls)).parent / str(cls.CSS_PATH))
