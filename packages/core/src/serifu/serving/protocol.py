"""The OpenAI-style request bodies, their limits, and how they map onto Serifu's decoding."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_N = 8
MAX_STOP = 8


class ApiError(Exception):
    """An error answered as OpenAI-style JSON: ``{"error": {"message", "type", ...}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class SamplingFields(BaseModel):
    """Fields both routes share. Unknown fields are ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="ignore")
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    no_repeat_ngram_size: int | None = Field(default=None, ge=0, le=64)
    """Not OpenAI's: text-generation-webui's name, which SillyTavern sends (0: off)."""
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=MAX_N)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stop_ok(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _bias_ok(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for key, value in (v or {}).items():
            if not key.lstrip("-").isdigit():
                raise ValueError(f"logit_bias keys are token ids; got {key!r}")
            if not -100.0 <= value <= 100.0:
                raise ValueError("logit_bias values must be between -100 and 100")
        return v

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]

    def params(self, vocab_size: int) -> dict[str, Any]:
        """The ``bot.decode`` sampling overrides these fields ask for."""
        out: dict[str, Any] = {}
        if self.temperature is not None:
            out["do_sample"] = self.temperature > 0.0
            if self.temperature > 0.0:
                out["temperature"] = self.temperature
        if self.top_p is not None:
            out["top_p"] = self.top_p
        if self.top_k is not None:
            out["top_k"] = max(0, self.top_k)
        for key in (
            "min_p",
            "repetition_penalty",
            "presence_penalty",
            "frequency_penalty",
            "no_repeat_ngram_size",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.logit_bias:
            bias: dict[int, float] = {}
            for key, value in self.logit_bias.items():
                token = int(key)
                if not 0 <= token < vocab_size:
                    raise ApiError(
                        400,
                        f"logit_bias token id {token} is outside the vocabulary (0..{vocab_size - 1})",
                        param="logit_bias",
                    )
                bias[token] = value
            out["logit_bias"] = bias
        return out


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        if any(p.type != "text" for p in self.content):
            raise ApiError(400, "only text content parts are supported", param="messages")
        return "".join(p.text or "" for p in self.content)


class ChatRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)

    def conversation(self) -> tuple[str, list[tuple[str, str]], str | None]:
        """(query, history pairs, client system text) from the messages.

        System (and developer) messages become extra system text after her card; the
        user/assistant turns become the history; the last message must be the user's.
        """
        system = "\n\n".join(m.text() for m in self.messages if m.role in ("system", "developer"))
        turns = [m for m in self.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            raise ApiError(400, "the last message must have the role 'user'", param="messages")
        history: list[tuple[str, str]] = []
        pending: list[str] = []
        for m in turns[:-1]:
            if m.role == "user":
                pending.append(m.text())
            else:
                history.append(("\n".join(pending), m.text()))
                pending = []
        query = "\n".join([*pending, turns[-1].text()])
        return query, history, system or None


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    echo: bool = False

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        if not prompts:
            raise ApiError(400, "prompt is empty", param="prompt")
        return prompts
