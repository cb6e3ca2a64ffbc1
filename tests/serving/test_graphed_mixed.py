"""Mixed-adapter batches on the static decoder (the server's CUDA-graph path), on the CPU.

``SERIFU_STATIC_DECODE=any`` runs the static decoder's bodies without graphs (what the GPU
captures). With the stacked-adapter hooks installed for good, a mixed batch on the static
decoder gives the eager mixed batch's tokens and each heroine's one-adapter-at-a-time
tokens, greedy and seeded sampling; the row weights are rewritten in place between batches
(the same buffer a captured graph reads); the engine pads batches up to a bucket size and
drops the pad rows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("fastapi")

from .conftest import save_random_adapters

NAMES = ["rei", None, "akane", "hina"]  # None: the bare base
QUERIES = ["おはよう", "今日の放課後は何をするつもりなの？", "ねえ", "部活どう？"]
GREEDY: dict[str, Any] = {"do_sample": False}
SAMPLED: dict[str, Any] = {
    "do_sample": True,
    "temperature": 1.0,
    "top_p": 0.95,
    "repetition_penalty": 1.1,
}


@pytest.fixture(scope="module")
def heroines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from serifu.inference import load_chatbot
    from serifu.serving.heroines import heroines_on

    paths = save_random_adapters(
        tmp_path_factory.mktemp("graphed"), ["akane", "rei", "hina"], seed=10, alpha=8, alpha_step=4
    )
    bot = load_chatbot(
        model="tiny-gemma", system_prompt=False, device="cpu", quantize=False, vocabulary="off"
    )
    return heroines_on(bot, paths, vocabulary="off")


def _base(heroines: dict[str, Any]) -> Any:
    return heroines["tiny-gemma"].bot


def _final(bot: Any, prompts: list[list[int]], params: dict[str, Any], seed: int | None) -> list:
    last: list[Any] = []
    for states in bot.decode(prompts, max_new_tokens=10, params=params, seed=seed, one_line=False):
        last = states
    return [(s.text, s.n_tokens, s.finish_reason) for s in last]


def _uninstall(bot: Any) -> None:
    from serifu.serving.mixed_lora import MixedLora

    mixed = MixedLora.for_model(bot.model)
    assert mixed is not None
    mixed.uninstall(bot.model)


def _one_adapter_at_a_time(
    bot: Any,
    prompts: list[list[int]],
    params: dict[str, Any],
    seed: int | None,
    mp: Any,
    names: list[str | None] = NAMES,
) -> list:
    """Row i from a batch of the same prompts decoded with PEFT's adapter ``names[i]`` on
    every row (eager steps, no stacked hooks): the same shapes and random draws."""
    from serifu.serving.engine import _adapters

    _uninstall(bot)
    mp.setenv("SERIFU_STATIC_DECODE", "0")
    out = {}
    for name in set(names):
        with _adapters(bot.model, [name] * len(prompts)):
            out[name] = _final(bot, prompts, params, seed)
    return [out[name][i] for i, name in enumerate(names)]


@pytest.mark.parametrize(
    ("params", "seed"), [(GREEDY, None), (SAMPLED, 7)], ids=["greedy", "sampled"]
)
def test_static_mixed_batch_matches_eager_and_one_adapter_at_a_time(
    heroines: dict[str, Any], params: dict[str, Any], seed: int | None, monkeypatch: Any
) -> None:
    from serifu.inference.decoding import static_decoding
    from serifu.serving.mixed_lora import MixedLora

    bot = _base(heroines)
    prompts = [bot.encode_prompt(q) for q in QUERIES]
    mixed = MixedLora.for_model(bot.model)
    assert mixed is not None
    runs = {}
    for path in ("any", "0"):  # the static decoder, then eager steps; both stacked
        monkeypatch.setenv("SERIFU_STATIC_DECODE", path)
        mixed.install(bot.model)
        mixed.set_rows(NAMES)
        assert static_decoding(bot.model) == (path == "any")
        runs[path] = _final(bot, prompts, params, seed)
    decoders = bot.model.get_base_model().__dict__.get("_serifu_decoders", {})
    assert [key[0] for key in decoders] == [4]  # the static path really ran
    single = _one_adapter_at_a_time(bot, prompts, params, seed, monkeypatch)
    assert runs["any"] == runs["0"] == single
    assert len({text for text, _, _ in single}) == 4  # each adapter changes the reply
    assert all(n > 0 for _, n, _ in single)


def test_in_place_row_weights_switch_adapters_on_the_same_decoder(
    heroines: dict[str, Any], monkeypatch: Any
) -> None:
    from serifu.serving.mixed_lora import MixedLora

    bot = _base(heroines)
    prompts = [bot.encode_prompt(q) for q in QUERIES]
    expected = _one_adapter_at_a_time(bot, prompts, GREEDY, None, monkeypatch)
    # the same prompts, the adapters in reverse order: row i now uses NAMES[3 - i]
    flipped = _one_adapter_at_a_time(bot, prompts, GREEDY, None, monkeypatch, NAMES[::-1])
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")
    mixed = MixedLora.for_model(bot.model)
    assert mixed is not None
    mixed.install(bot.model)
    buffer = mixed.set_rows(NAMES)
    first = _final(bot, prompts, GREEDY, None)
    decoders = dict(bot.model.get_base_model().__dict__["_serifu_decoders"])
    again = mixed.set_rows(NAMES[::-1])  # the next batch: other adapters per row
    assert again is buffer and again.data_ptr() == buffer.data_ptr()  # rewritten, not replaced
    second = _final(bot, prompts, GREEDY, None)
    after = bot.model.get_base_model().__dict__["_serifu_decoders"]
    assert list(after) == list(decoders)
    assert all(after[k] is decoders[k] for k in decoders)  # the same decoder (and graphs)
    assert first == expected
    assert second == flipped
    assert first != second


def test_engine_pads_to_a_bucket_and_drops_pad_rows(
    heroines: dict[str, Any], monkeypatch: Any
) -> None:
    """Three heroines' requests share one batch padded to 4 rows (static decoder); each client
    gets exactly her own reply; the hooks stay installed and a one-heroine batch (1 row, no
    pad) goes through them too."""
    from serifu.serving.engine import Engine, Job
    from serifu.serving.mixed_lora import MixedLora

    base = _base(heroines)
    cids = ["akane", "tiny-gemma", "rei"]
    prompts = {cid: heroines[cid].encoder.encode_prompt(QUERIES[0]) for cid in cids}
    expected = {}
    _uninstall(base)
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "0")
    from serifu.serving.engine import _adapters

    for cid in cids:
        h = heroines[cid]
        with _adapters(h.bot.model, [h.adapter_name]):
            expected[cid] = _final(h.bot, [prompts[cid]], GREEDY, None)[0][0]
    assert len(set(expected.values())) == 3
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")

    async def run(batches: list[list[str]]) -> tuple[Engine, list[dict[str, list[Any]]]]:
        engine = Engine(heroines, max_decoders=3, continuous=False)  # batch at a time
        loop = asyncio.get_running_loop()
        results = []
        engine.start()
        for group in batches:
            jobs = {
                cid: Job(heroines[cid], [prompts[cid]], 10, GREEDY, [], None, False, loop)
                for cid in group
            }
            with engine._cond:  # all waiting before the worker takes the first
                for job in jobs.values():
                    engine.submit(job)
            events: dict[str, list[Any]] = {}
            for cid, job in jobs.items():
                events[cid] = []
                while (event := await job.events.get()).kind == "delta":
                    events[cid].append(event)
                events[cid].append(event)
            results.append(events)
        await asyncio.to_thread(engine.stop)
        return engine, results

    engine, results = asyncio.run(run([cids, ["rei"]]))
    assert (engine.batches, engine.batched_rows, engine.padded_rows) == (2, 4, 1)
    for events in results:
        for cid, got in events.items():
            assert got[-1].kind == "done" and got[-1].row == 0
            assert all(e.row == 0 for e in got)
            assert "".join(e.text for e in got) == expected[cid], cid
    decoders = base.model.get_base_model().__dict__["_serifu_decoders"]
    assert sorted(key[0] for key in decoders) == [1, 4]
    mixed = MixedLora.for_model(base.model)
    assert mixed is not None and mixed.installed
    assert sorted(mixed._buffers) == [1, 4]
    _uninstall(base)


def test_a_full_mixed_batch_streams_the_eager_loops_steps(
    heroines: dict[str, Any], monkeypatch: Any
) -> None:
    """16 rows of four heroines in one batch, with a repetition penalty (the static loop that
    picks on the host, launching each step before the host reads the previous one) and a stop
    string that ends some rows early: every client gets the eager loop's deltas (one per
    step), finish reasons, token counts and log-probabilities; the static loop's phases were
    timed."""
    from serifu.inference.decoding import TIMES
    from serifu.serving.engine import Engine, Job

    cids = ["akane", "tiny-gemma", "rei", "hina"]
    params = {"do_sample": False, "repetition_penalty": 1.3}
    rows = [(cid, q) for q in QUERIES for cid in cids]

    def run(static: str, stop: list[str], interval: float = 0.0) -> list[list[tuple[Any, ...]]]:
        monkeypatch.setenv("SERIFU_STATIC_DECODE", static)

        async def go() -> list[list[tuple[Any, ...]]]:
            engine = Engine(heroines, max_batch=16, continuous=False, stream_interval=interval)
            loop = asyncio.get_running_loop()
            jobs = [
                Job(
                    heroines[c],
                    [heroines[c].encoder.encode_prompt(q)],
                    12,
                    params,
                    stop,
                    None,
                    False,
                    loop,
                )
                for c, q in rows
            ]
            with engine._cond:  # all waiting before the worker takes the first
                for job in jobs:
                    engine.submit(job)
            engine.start()
            got = []
            for job in jobs:
                events: list[tuple[Any, ...]] = []
                while (event := await job.events.get()).kind == "delta":
                    events.append((event.kind, event.text, None, 0, 0.0))
                done = (event.kind, "", event.finish_reason, event.n_tokens)
                events.append((*done, round(event.logprob, 3)))
                got.append(events)
            await asyncio.to_thread(engine.stop)
            assert engine.batches == 1 and engine.batched_rows == 16
            return got

        return asyncio.run(go())

    plain = run("0", [])
    texts = ["".join(e[1] for e in row) for row in plain]
    stop = next(t[2:4] for t in texts if len(t) >= 6)  # ends this row (and maybe others) early
    eager = run("0", [stop])
    TIMES.reset()
    static = run("any", [stop])
    assert static == eager
    assert all(row[-1][4] < 0.0 for row in eager)
    reasons = [row[-1][2] for row in eager]
    assert "stop" in reasons and "length" in reasons
    assert sum(len(row) > 2 for row in eager) > 8  # streamed step by step
    assert TIMES.calls == 1 and TIMES.steps > 1 and TIMES.wait_s >= 0.0
    # text handed over at most once a minute (and when a row starts or ends): rows' pieces
    # merged into fewer deltas; the same text, stops and counts
    merged = run("any", [stop], interval=60.0)
    for row, want in zip(merged, eager, strict=True):
        assert row[-1] == want[-1]
        assert "".join(e[1] for e in row) == "".join(e[1] for e in want)
        assert all(e[1] for e in row[:-1]) and len(row) <= len(want)
    assert 2 * sum(len(row) for row in merged) < sum(len(row) for row in eager)


def test_warm_up_makes_every_bucket_decoder_before_the_first_request(
    heroines: dict[str, Any], monkeypatch: Any
) -> None:
    """``Engine.warm_up`` makes the static decoder of every batch-size bucket up to
    ``max_batch`` (on a GPU: their step graphs) for the length bucket a typical request
    uses; a request afterwards reuses one of them (no decoder made while serving) and gets
    the same reply as without the warm-up. Where the static decoder does not run it does
    nothing."""
    from serifu.serving.engine import Engine, Job

    base = _base(heroines)
    lm = base.model.get_base_model()
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "0")
    assert Engine(heroines, max_batch=8).warm_up()["batch_sizes"] == {}
    monkeypatch.setenv("SERIFU_STATIC_DECODE", "any")
    lm.__dict__.pop("_serifu_decoders", None)
    engine = Engine(heroines, max_batch=8, continuous=False)
    report = engine.warm_up(max_tokens=10, turn=QUERIES[0])
    assert list(report["batch_sizes"].values()) == [[1, 2, 4, 8]]
    decoders = dict(lm.__dict__["_serifu_decoders"])
    assert sorted(key[0] for key in decoders) == [1, 2, 4, 8]

    async def reply() -> str:
        loop = asyncio.get_running_loop()
        job = Job(
            heroines["rei"],
            [heroines["rei"].encoder.encode_prompt(QUERIES[0])],
            10,
            GREEDY,
            [],
            None,
            False,
            loop,
        )
        engine.start()
        engine.submit(job)
        text = ""
        while (event := await job.events.get()).kind == "delta":
            text += event.text
        await asyncio.to_thread(engine.stop)
        return text

    warmed = asyncio.run(reply())
    after = lm.__dict__["_serifu_decoders"]
    assert set(after) == set(decoders) and all(after[k] is decoders[k] for k in decoders)
    lm.__dict__.pop("_serifu_decoders", None)
    engine = Engine(heroines, max_batch=8, continuous=False)
    assert asyncio.run(reply()) == warmed
    _uninstall(base)
