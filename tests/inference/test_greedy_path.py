"""The device-side greedy loop under ``Chatbot.decode`` (``StaticDecoder.greedy``: pick, EOS
check and log-probability on the device, the host reading a chunk of steps at once) gives
exactly the steps, text, stops and log-probabilities of the host-pick loops.

On the CPU ``SERIFU_STATIC_DECODE=any`` runs the static-cache paths without CUDA graphs (the
same bodies the GPU captures); ``SERIFU_GREEDY_CHUNK=0`` turns the greedy loop off.
"""

from __future__ import annotations

from typing import Any

import pytest

from serifu.inference import load_chatbot
from serifu.inference.decoding import decode_steps, plain_greedy

PATHS = {
    "eager": {"SERIFU_STATIC_DECODE": "0"},
    "static": {"SERIFU_STATIC_DECODE": "any", "SERIFU_GREEDY_CHUNK": "0"},
    "greedy": {"SERIFU_STATIC_DECODE": "any", "SERIFU_GREEDY_CHUNK": "1"},
}
QUERIES = ("こんにちは", "今日の放課後は何をするつもりなの？", "ねえ")


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIFU_DECODE_CHUNK", "4")  # chunk boundaries fall inside replies


@pytest.fixture(scope="module", params=["tiny-gemma", "tiny-llama", "tiny-gptj"])
def bot(request: pytest.FixtureRequest) -> Any:
    bot = load_chatbot(model=request.param, character="akane", quantize=False, device="cpu")
    bot.generation = {"do_sample": False}
    return bot


def _use(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    for key, value in PATHS[path].items():
        monkeypatch.setenv(key, value)


def _decoders(bot: Any) -> dict[Any, Any]:
    return bot.model.__dict__.get("_serifu_decoders", {})


def _flat(rows: list[list[float]]) -> list[float]:
    return [v for row in rows for v in row]


def _run(bot: Any, prompts: list[list[int]], **kw: Any) -> tuple[list[Any], list[Any]]:
    """Every step's (text, done, finish_reason, n_tokens) per row, and the log-probabilities."""
    steps, scores = [], []
    for states in bot.decode(prompts, **kw):
        steps.append([(s.text, s.done, s.finish_reason, s.n_tokens) for s in states])
        scores.append([s.logprob for s in states])
    return steps, scores


def test_greedy_loop_gives_the_same_steps_text_and_logprobs(
    bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = [bot.encode_prompt(q) for q in QUERIES]  # left-padded batch of three
    _use(monkeypatch, "eager")
    free, _ = _run(bot, prompts, max_new_tokens=14, one_line=False)
    # stop strings cut rows 0 and 1 at different steps, inside chunks; row 2 runs to the limit
    final = [text for text, *_ in free[-1]]
    stop = [final[0][len(final[0]) // 3 :][:2], final[1][-4:-2]]
    assert all(stop)
    runs = {}
    for path in PATHS:
        _use(monkeypatch, path)
        runs[path] = _run(bot, prompts, max_new_tokens=14, stop=stop, one_line=False)
    steps, scores = runs["greedy"]
    assert steps == runs["static"][0] == runs["eager"][0]
    [decoder] = _decoders(bot).values()
    if decoder.head_rows is None:
        assert scores == runs["static"][1]  # the same forward: exactly the same numbers
    else:  # her vocabulary's rows on the device, the masked full width on the host
        assert _flat(scores) == pytest.approx(_flat(runs["static"][1]), abs=1e-5)
    assert _flat(scores) == pytest.approx(_flat(runs["eager"][1]), abs=1e-3)  # rounding only
    assert [row[2] for row in steps[-1][:2]] == ["stop", "stop"]
    assert steps[-1][0][3] < 14 and all(s < 0 for s in scores[-1])
    # the greedy loop ran (its device counter moved); the static host-pick loop does not touch it
    assert int(decoder.counter) > 0


def test_streamed_pieces_and_replies_are_the_same(
    bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces = {}
    for path in ("eager", "greedy"):
        _use(monkeypatch, path)
        pieces[path] = (
            list(bot.stream("こんにちは", max_new_tokens=12)),
            [g.text for g in bot.generate_batch(list(QUERIES), max_new_tokens=12)],
        )
    assert pieces["greedy"] == pieces["eager"]
    assert "".join(pieces["greedy"][0]) == pieces["greedy"][1][0]


def test_eos_on_the_device_and_host_stops_match_the_eager_loop(
    bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = [bot.encode_prompt(q) for q in QUERIES]
    kwargs: dict[str, Any] = {"pad_id": 0, "params": {"do_sample": False}, "max_new_tokens": 30}
    _use(monkeypatch, "eager")
    *_, free = decode_steps(bot.model, prompts, eos_ids=set(), is_done=lambda r, i: False, **kwargs)
    eos = {free[0][5]}  # row 0 "says EOS" at its sixth token (inside the second chunk)

    def done(row: int, ids: list[int]) -> bool:
        return len(ids) >= 3 + row * 3  # the host stops the others at different steps

    runs = {}
    for path in ("eager", "greedy"):
        _use(monkeypatch, path)
        logprobs: list[list[float]] = []
        steps = [
            [list(r) for r in step]
            for step in decode_steps(
                bot.model, prompts, eos_ids=eos, is_done=done, logprobs=logprobs, **kwargs
            )
        ]
        runs[path] = (steps, logprobs)
    assert runs["greedy"][0] == runs["eager"][0]
    last = runs["greedy"][0][-1]
    # a row ends at its first EOS (not kept) or where the host stops it
    firsts = [next((i for i, t in enumerate(r) if t in eos), 99) for r in free]
    assert [len(r) for r in last] == [min(f, 3 + 3 * row) for row, f in enumerate(firsts)]
    assert len(last[0]) <= 5 and not eos & set(last[0])
    # one log-probability per chosen token, the EOS included
    assert [len(lp) for lp in runs["greedy"][1]] == [len(lp) for lp in runs["eager"][1]]
    assert _flat(runs["greedy"][1]) == pytest.approx(_flat(runs["eager"][1]), abs=1e-3)
    # every row stopped after 9 steps: the device loop ended at that chunk's end (plus the
    # chunk launched ahead), not at 30; the most recently used decoder of 3 rows (no output
    # vocabulary here: keyed apart)
    decoder = [d for key, d in _decoders(bot).items() if key[0] == 3][-1]
    assert int(decoder.counter) <= 9 + 3 + 4
    monkeypatch.setenv("SERIFU_DECODE_AHEAD", "0")  # each chunk read before the next runs
    list(decode_steps(bot.model, prompts, eos_ids=eos, is_done=done, **kwargs))
    assert int(decoder.counter) <= 9 + 3


def test_penalties_sampling_and_zero_tokens_keep_the_old_loop(
    bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plain_greedy({"do_sample": False, "repetition_penalty": 1.0, "logit_bias": {}}, {1})
    for params in (
        {"do_sample": True},
        {"repetition_penalty": 1.1},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.2},
        {"logit_bias": {5: 2.0}},
    ):
        assert not plain_greedy(params, {1})
    assert not plain_greedy({}, set(range(17)))  # more stop ids than the device check holds
    monkeypatch.setenv("SERIFU_GREEDY_CHUNK", "0")
    assert not plain_greedy({}, {1})
    prompts = [bot.encode_prompt("ねえ")]
    _use(monkeypatch, "greedy")
    assert list(bot.decode(prompts, max_new_tokens=0)) == []
    # a repetition penalty runs on the host-pick static loop: the greedy counter stays put
    list(bot.decode(prompts, max_new_tokens=6))
    decoder = next(d for key, d in _decoders(bot).items() if key[0] == 1)
    before = int(decoder.counter)
    penalised, _ = _run(bot, prompts, max_new_tokens=6, params={"repetition_penalty": 1.3})
    assert int(decoder.counter) == before
    _use(monkeypatch, "eager")
    assert _run(bot, prompts, max_new_tokens=6, params={"repetition_penalty": 1.3})[0] == penalised
