"""The FastAPI application: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``.

Every error is OpenAI-style JSON (``{"error": {...}}``) with a 4xx status for bad input;
an unexpected failure is a 500 with a one-line message, never a traceback.
"""

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from serifu.errors import SerifuError
from serifu.serving.engine import Engine, Event, Heroine, Job
from serifu.serving.protocol import ApiError, ChatRequest, CompletionRequest, SamplingFields

DEFAULT_CHAT_TOKENS = 48
DEFAULT_COMPLETION_TOKENS = 16


@dataclass
class ServerLimits:
    max_tokens: int = 512
    """Largest ``max_tokens`` a request may ask for."""
    max_body: int = 1024 * 1024
    """Largest request body in bytes."""


def create_app(
    engine: Engine,
    *,
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    limits: ServerLimits | None = None,
) -> Any:
    """The ASGI app; the engine's worker starts and stops with the app's lifespan."""
    import contextlib

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    limits = limits or ServerLimits()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await asyncio.to_thread(engine.stop)

    app = FastAPI(title="Serifu", lifespan=lifespan, docs_url=None, redoc_url=None)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )

    def error_response(err: ApiError) -> Any:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Any:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Any:
        return error_response(ApiError(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Any:
        return error_response(ApiError(400, str(exc)))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Any:
        return error_response(
            ApiError(500, f"internal error: {type(exc).__name__}", kind="server_error")
        )

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise ApiError(
                401,
                "invalid or missing API key (Authorization: Bearer …)",
                kind="authentication_error",
                code="invalid_api_key",
            )

    async def read_body(request: Request, model: type[SamplingFields]) -> Any:
        authorize(request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body:
            raise ApiError(413, f"the request body is over {limits.max_body} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limits.max_body:
                raise ApiError(413, f"the request body is over {limits.max_body} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints
            raise ApiError(400, f"the request body is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiError(400, f"{where}: {first['msg']}", param=where or None) from None

    def heroine_for(req: SamplingFields) -> Heroine:
        heroine = engine.heroines.get(req.model)
        if heroine is None:
            known = ", ".join(engine.heroines)
            raise ApiError(
                404,
                f"the model {req.model!r} does not exist (served: {known})",
                param="model",
                code="model_not_found",
            )
        return heroine

    def budget(req: SamplingFields, prompt_len: int, heroine: Heroine, default: int) -> int:
        wanted = req.max_tokens or default
        if wanted > limits.max_tokens:
            raise ApiError(
                400,
                f"max_tokens {wanted} is over this server's limit of {limits.max_tokens}",
                param="max_tokens",
            )
        context = _context_length(heroine.bot)
        if context and prompt_len + wanted > context:
            raise ApiError(
                400,
                f"the prompt ({prompt_len} tokens) plus max_tokens ({wanted}) is over the model's context of {context} tokens",
                param="max_tokens",
            )
        return wanted

    def sampling(req: SamplingFields, heroine: Heroine, rows: int) -> dict[str, Any]:
        params = req.params(len(heroine.encoder.tokenizer))
        if rows > 1 and req.temperature is None:
            params["do_sample"] = True  # n different choices, as the OpenAI default does
        return params

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        authorize(request)
        return {
            "object": "list",
            "data": [
                {"id": h, "object": "model", "created": 0, "owned_by": "serifu"}
                for h in engine.heroines
            ],
        }

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        req: ChatRequest = await read_body(request, ChatRequest)
        heroine = heroine_for(req)
        query, history, system = req.conversation()
        try:
            ids = heroine.encoder.encode_prompt(query, history, extra_system=system)
        except SerifuError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        max_tokens = budget(req, len(ids), heroine, DEFAULT_CHAT_TOKENS)
        rerank = (
            req.n == 1
            and not req.stream
            and heroine.bot.rerank is not None
            and heroine.bot.best_of_n > 1
        )
        rows = heroine.bot.best_of_n if rerank else req.n
        job = Job(
            heroine,
            [ids] * rows,
            max_tokens,
            sampling(req, heroine, rows),
            req.stops(),
            req.seed,
            True,
            asyncio.get_running_loop(),
        )
        engine.submit(job)
        rid, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        if req.stream:
            return _sse(_chat_chunks(job, rid, created, req, len(ids)))
        texts, reasons, counts, logprobs = await _collect(job, request)
        choices = list(range(rows))
        if rerank:
            from serifu.inference.chatbot import Generation

            cands = [
                Generation(texts[i], "", reasons[i] == "stop", counts[i], 0.0, logprobs[i])
                for i in choices
            ]
            choices = [await asyncio.to_thread(heroine.bot.rerank.best, query, cands)]
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [
                {
                    "index": k,
                    "message": {"role": "assistant", "content": texts[i]},
                    "finish_reason": reasons[i],
                    "logprobs": None,
                }
                for k, i in enumerate(choices)
            ],
            "usage": _usage(len(ids), sum(counts)),
        }

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        req: CompletionRequest = await read_body(request, CompletionRequest)
        heroine = heroine_for(req)
        bot = heroine.encoder
        prompts = req.prompts()
        encoded = [
            list(bot.tokenizer(p, add_special_tokens=bot.add_special_tokens)["input_ids"])
            for p in prompts
        ]
        if any(not ids for ids in encoded):
            raise ApiError(400, "a prompt encodes to no tokens", param="prompt")
        max_tokens = budget(req, max(len(i) for i in encoded), heroine, DEFAULT_COMPLETION_TOKENS)
        rows = [ids for ids in encoded for _ in range(req.n)]
        job = Job(
            heroine,
            rows,
            max_tokens,
            sampling(req, heroine, req.n),
            req.stops(),
            req.seed,
            False,
            asyncio.get_running_loop(),
        )
        engine.submit(job)
        rid, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())
        prompt_tokens = sum(len(i) for i in encoded)
        if req.stream:
            return _sse(_completion_chunks(job, rid, created, req, prompt_tokens))
        texts, reasons, counts, _ = await _collect(job, request)
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "choices": [
                {
                    "index": i,
                    "text": (prompts[i // req.n] if req.echo else "") + texts[i],
                    "logprobs": None,
                    "finish_reason": reasons[i],
                }
                for i in range(len(rows))
            ],
            "usage": _usage(prompt_tokens, sum(counts)),
        }

    return app


def _context_length(bot: Any) -> int | None:
    config = getattr(bot.model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _collect(job: Job, request: Any) -> tuple[list[str], list[str], list[int], list[float]]:
    """Wait for every row of a non-streaming job; cancel it when the client goes away."""
    rows = len(job.prompts)
    texts, reasons, counts, logprobs = [""] * rows, ["length"] * rows, [0] * rows, [0.0] * rows
    finished = 0
    try:
        while finished < rows:
            try:
                event = await asyncio.wait_for(job.events.get(), timeout=0.5)
            except TimeoutError:
                if await request.is_disconnected():
                    raise ApiError(499, "the client closed the connection") from None
                continue
            if event.kind == "error":
                assert event.error is not None
                raise event.error
            if event.kind == "delta":
                texts[event.row] += event.text
            else:
                reasons[event.row] = event.finish_reason or "stop"
                counts[event.row] = event.n_tokens
                logprobs[event.row] = event.logprob
                finished += 1
    finally:
        if finished < rows:
            job.cancelled.set()
    return texts, reasons, counts, logprobs


def _sse(events: AsyncIterator[dict[str, Any] | str]) -> Any:
    from sse_starlette import EventSourceResponse

    async def wrapped() -> AsyncIterator[dict[str, str]]:
        async for item in events:
            yield {"data": item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)}

    return EventSourceResponse(wrapped(), ping=15)


async def _rows(job: Job) -> AsyncIterator[Event]:
    """The job's events until every row is done; cancels the job if the stream is dropped.

    Events already waiting are taken together and each row's text pieces merged into one
    (one SSE chunk instead of several when the client reads slower than the decoder
    writes, e.g. a greedy chunk of steps arriving at once); a row's text always comes
    before its "done"."""
    finished = 0
    try:
        while finished < len(job.prompts):
            events = [await job.events.get()]
            while not job.events.empty():
                events.append(job.events.get_nowait())
            for event in _merged(events):
                yield event
                if event.kind == "error":
                    return
                if event.kind == "done":
                    finished += 1
    finally:
        if finished < len(job.prompts):
            job.cancelled.set()


def _merged(events: list[Event]) -> list[Event]:
    """Each row's text pieces merged into its first piece's place; every other event (a
    row's "done" after its text, errors) keeps its order."""
    out: list[Event] = []
    pending: dict[int, int] = {}  # row -> index in ``out`` of its merged text
    for event in events:
        at = pending.get(event.row)
        if event.kind == "delta" and at is not None:
            out[at] = Event("delta", event.row, out[at].text + event.text)
            continue
        if event.kind == "delta":
            pending[event.row] = len(out)
        else:
            pending.pop(event.row, None)
        out.append(event)
    return out


async def _stream_chunks(
    job: Job,
    rid: str,
    created: int,
    req: ChatRequest | CompletionRequest,
    prompt_tokens: int,
    *,
    obj: str,
    choice: Callable[[int, str, str | None], dict[str, Any]],
    opening: Callable[[int], dict[str, Any]] | None = None,
) -> AsyncIterator[dict[str, Any] | str]:
    """SSE chunks of one streamed job: ``choice(row, text, finish_reason)`` per event, an
    optional ``opening(row)`` choice first, usage when asked, then ``[DONE]``."""

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": rid,
            "object": obj,
            "created": created,
            "model": req.model,
            "choices": choices,
            **extra,
        }

    if opening is not None:
        for index in range(len(job.prompts)):
            yield chunk([opening(index)])
    completion = 0
    async for event in _rows(job):
        if event.kind == "error":
            assert event.error is not None
            yield event.error.body()
            break
        if event.kind == "delta":
            yield chunk([choice(event.row, event.text, None)])
        else:
            completion += event.n_tokens
            yield chunk([choice(event.row, "", event.finish_reason)])
    if req.stream_options is not None and req.stream_options.include_usage:
        yield chunk([], usage=_usage(prompt_tokens, completion))
    yield "[DONE]"


def _chat_chunks(
    job: Job, rid: str, created: int, req: ChatRequest, prompt_tokens: int
) -> AsyncIterator[dict[str, Any] | str]:
    def choice(index: int, text: str, reason: str | None) -> dict[str, Any]:
        delta = {"content": text} if reason is None else {}
        return {"index": index, "delta": delta, "finish_reason": reason, "logprobs": None}

    def opening(index: int) -> dict[str, Any]:
        return {
            "index": index,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": None,
            "logprobs": None,
        }

    return _stream_chunks(
        job,
        rid,
        created,
        req,
        prompt_tokens,
        obj="chat.completion.chunk",
        choice=choice,
        opening=opening,
    )


def _completion_chunks(
    job: Job, rid: str, created: int, req: CompletionRequest, prompt_tokens: int
) -> AsyncIterator[dict[str, Any] | str]:
    def choice(index: int, text: str, reason: str | None) -> dict[str, Any]:
        return {"index": index, "text": text, "logprobs": None, "finish_reason": reason}

    return _stream_chunks(
        job, rid, created, req, prompt_tokens, obj="text_completion", choice=choice
    )
