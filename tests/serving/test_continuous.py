"""Continuous batching (``serifu.serving.continuous``) on the CPU: rows join a running batch.

``SERIFU_STATIC_DECODE=any`` runs the static decoder's bodies without graphs (what the GPU
captures). A request admitted into a batch that is already decoding (its prompt prefilled
alone into a free row before the write slot) gives exactly the tokens it gets alone, and
the chat loop's reply (eager steps, one adapter at a time); its neighbours' replies do not
change when it joins; shifting the cache left keeps every row exact; a cancelled row frees
its slot; the engine admits requests that arrive mid-batch; seeded requests and the PEFT
fallback keep the batch-at-a-time path.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch

pytest.importorskip("fastapi")

GREEDY: dict[str, Any] = {"do_sample": False}
PENALISED: dict[str, Any] = {"do_sample": False, "repetition_penalty": 1.3}
NO_REPEAT: dict[str, Any] = {"do_sample": False, "no_repeat_ngram_size": 2}
QUERIES = {"akane": "おはよう", "rei": "今日の放課後は何をするつもりなの？", "hina": "ねえ"}


@pytest.fixture(scope="module")
def heroines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model

    from serifu.inference import load_chatbot
    from serifu.modeling import load_model, resolve_base
    from serifu.serving.heroines import heroines_on

    base = resolve_base("tiny-gemma")
    root = tmp_path_factory.mktemp("continuous")
    paths = {}
    for i, cid in enumerate(QUERIES):
        torch.manual_seed(20 + i)
        lm = load_model(base, quantize=False, device="cpu")
        config = LoraConfig(
            r=2 + i, lora_alpha=8, target_modules=list(base.lora_targets), init_lora_weights=False
        )
        get_peft_model(lm, config).save_pretrained(str(root / cid))
        paths[cid] = root / cid
    bot = load_chatbot(
        model="tiny-gemma", system_prompt=False, device="cpu", quantize=False, vocabulary="off"
    )
    return heroines_on(bot, paths, vocabulary="off")


@pytest.fixture(autouse=True)
def _static(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")


def _job(h: Any, query: str, max_tokens: int, params: dict[str, Any], **kw: Any) -> Any:
    from serifu.serving.engine import Job

    loop = kw.pop("loop", None)
    seed = kw.pop("seed", None)
    stop = kw.pop("stop", [])
    one_line = kw.pop("one_line", False)
    prompts = [h.encoder.encode_prompt(query)]
    return Job(h, prompts, max_tokens, params, stop, seed, one_line, loop)


def _summary(events: list[Any]) -> tuple[str, str | None, int, float]:
    assert events[-1].kind == "done", events
    text = "".join(e.text for e in events if e.kind == "delta")
    return text, events[-1].finish_reason, events[-1].n_tokens, events[-1].logprob


def _run(
    batch: Any, arrivals: dict[int, list[Any]]
) -> dict[int, tuple[str, str | None, int, float]]:
    """Decode ``batch``; the jobs in ``arrivals[k]`` are admitted before step k."""
    got: dict[int, list[Any]] = {}

    def take(events: list[tuple[Any, Any]]) -> None:
        for job, event in events:
            got.setdefault(id(job), []).append(event)

    step = 0
    while True:
        for job in arrivals.get(step, []):
            batch.make_room(job)
            assert batch.fits(job), (batch.position, [len(p) for p in job.prompts])
            take(batch.admit(job))
        if not batch.active and step >= max(arrivals):
            break
        take(batch.step())
        step += 1
    return {key: _summary(events) for key, events in got.items()}


def _batch(heroines: dict[str, Any], first: Any, start: int, **engine: Any) -> Any:
    from serifu.serving.engine import Engine

    batch = Engine(heroines, max_batch=4, continuous=True, **engine)._continuous(first)
    assert batch is not None
    batch.begin([first], start)
    return batch


def _reference(heroines: dict[str, Any], job: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The chat loop's reply: eager steps, PEFT's own adapter (no stacked hooks)."""
    from serifu.serving.engine import _adapters
    from serifu.serving.mixed_lora import MixedLora

    h = job.heroine
    mixed = MixedLora.for_model(h.bot.model)
    assert mixed is not None
    mixed.uninstall(h.bot.model)
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "0")
    last: list[Any] = []
    with _adapters(h.bot.model, [h.adapter_name]):
        for states in h.bot.decode(
            job.prompts,
            max_new_tokens=job.max_tokens,
            params=job.params,
            stop=job.stop,
            one_line=job.one_line,
        ):
            last = states
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")
    s = last[0]
    return s.text, s.finish_reason, s.n_tokens, s.logprob


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert a[:3] == b[:3]
    assert a[3] == pytest.approx(b[3], abs=1e-3)


def test_admit_matches_a_left_padded_prefill() -> None:
    """Decoder level: a prompt admitted into row 1 of a running batch gives the logits and
    greedy tokens of the same prompt decoded by a plain left-padded batch."""
    from serifu.accel.decode import StaticDecoder
    from serifu.modeling import load_model, resolve_base

    torch.manual_seed(0)
    lm = load_model(resolve_base("tiny-gemma"), quantize=False, device="cpu")
    prompt = [int(t) for t in torch.randint(10, 200, (9,))]
    other = [int(t) for t in torch.randint(10, 200, (5,))]
    plain = StaticDecoder(lm, max_len=64, batch_size=2, graph=False)
    padded = torch.tensor([[0] * 4 + other, prompt])
    mask = torch.tensor([[0] * 4 + [1] * 5, [1] * 9])
    expected = list(plain.generate(padded, mask, max_new_tokens=6))
    dec = StaticDecoder(lm, max_len=64, batch_size=2, graph=False)
    dec.begin(20)
    dec.admit(0, other, 20)
    logits = dec.admit(1, prompt, 20)
    torch.testing.assert_close(logits, plain.prefill(padded, mask)[1], atol=1e-4, rtol=1e-4)
    tokens = [int(logits.argmax())]
    for _ in range(5):
        dec.step_ids[1, 0] = tokens[-1]
        tokens.append(int(dec.step(dec.step_ids)[1].argmax()))
    assert tokens == [int(t[1]) for t in expected]
    assert int(dec.mask[1].sum()) == 9 + 5 and int(dec.mask[1, :11].sum()) == 0


@pytest.mark.parametrize("params", [GREEDY, PENALISED], ids=["greedy", "penalised"])
def test_row_admitted_mid_batch_gets_its_tokens_alone(
    heroines: dict[str, Any], params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same request alone and admitted three steps into a batch of two other heroines:
    identical tokens, text, finish reason and log-probability; the neighbour that was
    decoding when it joined gives its own alone reply too; both equal the chat loop's."""
    x = _job(heroines["akane"], QUERIES["akane"], 10, params)
    a = _job(heroines["rei"], QUERIES["rei"], 14, params)
    b = _job(heroines["tiny-gemma"], QUERIES["hina"], 12, params)
    start = max(len(j.prompts[0]) for j in (x, a, b)) + 5
    alone_x = _run(_batch(heroines, x, start), {0: [x]})[id(x)]
    alone_a = _run(_batch(heroines, a, start), {0: [a]})[id(a)]
    batch = _batch(heroines, a, start)
    mid = _run(batch, {0: [a, b], 3: [x]})
    assert batch.admitted == 3 and batch.steps >= 13
    _same(mid[id(x)], alone_x)
    _same(mid[id(a)], alone_a)
    assert mid[id(x)][2] == 10 and mid[id(x)][0] != mid[id(a)][0]
    _same(alone_x, _reference(heroines, x, monkeypatch))
    _same(alone_a, _reference(heroines, a, monkeypatch))


def test_no_repeat_ngrams_count_each_row_s_own_reply(
    heroines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``no_repeat_ngram_size`` in a running batch: each row's reply (not its prompt, not its
    neighbour's) is what it may not repeat; the replies equal the chat loop's, and the ban
    changed them (greedy, these rows loop)."""
    names = ("rei", "akane")
    jobs = [_job(heroines[h], QUERIES[h], 40, NO_REPEAT) for h in names]
    start = max(len(j.prompts[0]) for j in jobs) + 5
    got = _run(_batch(heroines, jobs[0], start), {0: [jobs[0]], 2: [jobs[1]]})
    for name, job in zip(names, jobs, strict=True):
        _same(got[id(job)], _reference(heroines, job, monkeypatch))
        free = _job(heroines[name], QUERIES[name], 40, GREEDY)
        assert _reference(heroines, free, monkeypatch)[0] != got[id(job)][0]


def test_a_freed_slot_takes_the_next_request_exactly(heroines: dict[str, Any]) -> None:
    """A short request finishes; the next request is admitted into its slot while the step
    launched after its last token (which still ran that slot) is in flight: it gets its
    alone tokens, and the long neighbour is undisturbed."""
    a = _job(heroines["rei"], QUERIES["rei"], 20, PENALISED)
    short = _job(heroines["hina"], QUERIES["hina"], 2, PENALISED)
    x = _job(heroines["akane"], QUERIES["akane"], 8, PENALISED)
    start = max(len(j.prompts[0]) for j in (a, short, x))
    batch = _batch(heroines, a, start)
    events = batch.admit(a) + batch.admit(short) + batch.step() + batch.step()
    assert batch.free() == [1, 2, 3]  # the short request is done (2 tokens) ...
    assert 1 in [slot for slot, _ in batch._inflight[0]]  # ... and its slot still runs
    events += batch.admit(x)
    assert batch.rows[1].job is x
    got = _run(batch, {0: []})
    got[id(short)] = _summary([e for j, e in events if j is short])
    for job in (a, x):  # the text sent before the helper ran
        head = "".join(e.text for j, e in events if j is job and e.kind == "delta")
        got[id(job)] = (head + got[id(job)][0], *got[id(job)][1:])
    assert got[id(short)][2] == 2 and batch.free() == [0, 1, 2, 3]
    for job in (a, x):
        alone = _run(_batch(heroines, job, start), {0: [job]})[id(job)]
        _same(got[id(job)], alone)


def test_stop_strings_and_newlines_as_the_chat_loop(
    heroines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = heroines["hina"]
    free = _reference(heroines, _job(h, QUERIES["hina"], 16, GREEDY), monkeypatch)
    assert len(free[0]) >= 4
    for job in (
        _job(h, QUERIES["hina"], 16, GREEDY, stop=[free[0][2:4]]),
        _job(h, QUERIES["hina"], 16, GREEDY, one_line=True),
    ):
        other = _job(heroines["rei"], QUERIES["rei"], 16, GREEDY)
        start = len(other.prompts[0]) + len(job.prompts[0])
        got = _run(_batch(heroines, other, start), {0: [other], 2: [job]})[id(job)]
        _same(got, _reference(heroines, job, monkeypatch))
    assert got[1] in ("stop", "length")


def test_shifting_the_cache_keeps_rows_exact(heroines: dict[str, Any]) -> None:
    """A batch near the end of its cache shifts every row left to admit a new request;
    both rows still give their alone replies."""
    a = _job(heroines["rei"], QUERIES["rei"], 40, GREEDY)
    b = _job(heroines["akane"], QUERIES["akane"], 40, GREEDY)
    end = 512 - 40  # the last write slot that leaves a reply of 40 tokens room
    batch = _batch(heroines, a, end, context=512)
    assert batch.max_len == 512 and batch.position == end
    got = _run(batch, {0: [a], 10: [b]})
    assert batch.shifts == 1 and batch.position < end
    for job in (a, b):
        alone = _run(_batch(heroines, job, end, context=512), {0: [job]})[id(job)]
        _same(got[id(job)], alone)


def test_a_cancelled_row_frees_its_slot(heroines: dict[str, Any]) -> None:
    a = _job(heroines["rei"], QUERIES["rei"], 12, GREEDY)
    b = _job(heroines["akane"], QUERIES["akane"], 12, GREEDY)
    start = max(len(a.prompts[0]), len(b.prompts[0]))
    alone = _run(_batch(heroines, b, start), {0: [b]})[id(b)]
    batch = _batch(heroines, a, start)
    events = batch.admit(a) + batch.admit(b) + batch.step()
    a.cancelled.set()
    after = batch.step()
    assert batch.active == 1 and len(batch.free()) == 3
    assert after and all(job is b for job, _ in after)
    left = _run(batch, {0: []})[id(b)]
    mine = [e for job, e in events + after if job is b]
    text = "".join(e.text for e in mine if e.kind == "delta") + left[0]
    assert (text, *left[1:3]) == alone[:3]


def test_engine_admits_requests_into_the_running_batch(
    heroines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live worker thread: two requests arrive after the first one's first token; they join
    its batch (no new batch), and each client gets exactly her alone reply. A seeded request
    runs in a batch of its own (the batch path)."""
    from serifu.serving.engine import Engine

    jobs_spec = [("rei", 120), ("akane", 10), ("hina", 8)]
    expected = {
        cid: _reference(heroines, _job(heroines[cid], QUERIES[cid], n, GREEDY), monkeypatch)
        for cid, n in jobs_spec
    }

    async def collect(job: Any) -> tuple[str, str | None, int, float]:
        events = []
        while (event := await job.events.get()).kind == "delta":
            events.append(event)
        events.append(event)
        return _summary(events)

    async def run() -> tuple[Engine, dict[str, Any], Any]:
        engine = Engine(heroines, max_batch=4, continuous=True)
        loop = asyncio.get_running_loop()
        engine.start()
        first = _job(heroines["rei"], QUERIES["rei"], 120, GREEDY, loop=loop)
        engine.submit(first)
        head = await first.events.get()
        assert head.kind == "delta"  # it is decoding now
        later = [_job(heroines[c], QUERIES[c], n, GREEDY, loop=loop) for c, n in jobs_spec[1:]]
        for job in later:
            engine.submit(job)
        results = dict(
            zip(
                ["akane", "hina"],
                await asyncio.gather(*(collect(j) for j in later)),
                strict=True,
            )
        )
        tail = await collect(first)
        rest = (head.text + tail[0], *tail[1:])
        seeded = _job(heroines["akane"], QUERIES["akane"], 6, GREEDY, loop=loop, seed=3)
        assert engine._continuous(seeded) is None
        engine.submit(seeded)
        last = await collect(seeded)
        await asyncio.to_thread(engine.stop)
        return engine, results, (rest, last)

    engine, results, (rest, seeded) = asyncio.run(run())
    assert engine.admitted_rows >= 1  # at least one joined the running batch
    assert engine.batches <= 3 and engine.steps > 0
    assert 1.0 <= engine.step_rows / engine.steps <= 4
    for cid, got in results.items():
        assert got[:3] == expected[cid][:3], cid
    assert rest[:3] == expected["rei"][:3]  # the first request's tail was not disturbed
    assert seeded[2] == 6


def test_batch_path_where_continuous_batching_does_not_apply(heroines: dict[str, Any]) -> None:
    from serifu.serving.engine import Engine

    job = _job(heroines["akane"], QUERIES["akane"], 8, GREEDY)
    assert (
        Engine(heroines, stacked=False, continuous=True)._continuous(job) is None
    )  # PEFT switching
    assert Engine(heroines, continuous=False)._continuous(job) is None
    assert Engine(heroines)._continuous(job) is None  # opt-in: slower than batches so far
    too_long = _job(heroines["akane"], QUERIES["akane"], 8, GREEDY)
    too_long.prompts = [too_long.prompts[0]] * 5  # more rows than the batch holds
    assert Engine(heroines, max_batch=4, continuous=True)._continuous(too_long) is None
    assert Engine(heroines, max_batch=4, continuous=True)._continuous(job) is not None


def test_openai_client_through_continuous_batching(
    heroines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live app on a continuous batch: streamed and whole replies of two heroines asked
    at once equal the chat loop's replies; ``n=2`` greedy choices are equal; usage counts."""
    openai = pytest.importorskip("openai")
    import functools
    from concurrent.futures import ThreadPoolExecutor

    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine

    from .conftest import _serve

    expected = {
        cid: _reference(
            heroines, _job(heroines[cid], QUERIES[cid], 12, GREEDY, one_line=True), monkeypatch
        )
        for cid in ("akane", "rei")
    }

    def ask(client: Any, cid: str) -> tuple[str, str, list[str]]:
        messages = [{"role": "user", "content": QUERIES[cid]}]
        kw: dict[str, Any] = {"model": cid, "messages": messages, "max_tokens": 12}
        stream = client.chat.completions.create(**kw, temperature=0, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        both = client.chat.completions.create(**kw, temperature=0, n=2)
        return text, both.choices[0].finish_reason, [c.message.content for c in both.choices]

    engine = Engine(heroines, max_batch=4, continuous=True)
    for url in _serve(create_app(engine)):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        with ThreadPoolExecutor(2) as pool:
            replies = pool.map(functools.partial(ask, client), ("akane", "rei"))
            got = dict(zip(("akane", "rei"), replies, strict=True))
    for cid, (text, reason, choices) in got.items():
        assert text == expected[cid][0] and reason == expected[cid][1]
        assert choices == [text, text]
    assert engine._high and engine.steps > 0  # the continuous path ran


def test_an_unexpected_failure_falls_back_to_batches(
    heroines: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure inside continuous batching answers its client with a 500 and turns
    continuous batching off (saying why); the next request is served batch at a time."""
    from serifu.accel.decode import StaticDecoder
    from serifu.serving.engine import Engine

    def broken(self: Any, *args: Any) -> Any:
        raise RuntimeError("no room on this device")

    async def run() -> tuple[Engine, Any, Any]:
        engine = Engine(heroines, max_batch=4, continuous=True)
        loop = asyncio.get_running_loop()
        engine.start()
        first = _job(heroines["akane"], QUERIES["akane"], 6, GREEDY, loop=loop)
        with monkeypatch.context() as mp:
            mp.setattr(StaticDecoder, "admit", broken)
            engine.submit(first)
            failed = await asyncio.wait_for(first.events.get(), 300)  # a guard, not a timing
        second = _job(heroines["akane"], QUERIES["akane"], 6, GREEDY, loop=loop)
        engine.submit(second)
        events = []
        while (event := await asyncio.wait_for(second.events.get(), 300)).kind == "delta":
            events.append(event)
        await asyncio.to_thread(engine.stop)
        return engine, failed, [*events, event]

    engine, failed, events = asyncio.run(run())
    assert failed.kind == "error" and failed.error.status == 500
    assert not engine.continuous and "no room on this device" in (engine.continuous_error or "")
    assert events[-1].kind == "done" and events[-1].n_tokens == 6
