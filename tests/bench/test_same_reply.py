"""same_reply's summary (bench/gpu/same_reply.py; the processes themselves need CUDA): one
reply only when every finished process gave it, and never from a single process; the rows of
the session-39 record it was written for read as the doc says."""

from __future__ import annotations

import json
from pathlib import Path

from bench.gpu.same_reply import summarise

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_one_reply_needs_every_finished_process_and_two_of_them() -> None:
    rows = {
        "pinned": [{"tokens_sha": "a", "tok_s": 10.0}, {"tokens_sha": "a", "tok_s": 12.0}],
        "tuned": [{"tokens_sha": "a", "tok_s": 11.0}, {"tokens_sha": "b", "tok_s": 11.0}],
        "cut": [{"tokens_sha": "a", "tok_s": 9.0}, {"error": "timed out"}],
    }
    got = summarise(rows)
    assert got["pinned"] == {
        "tokens_same_every_process": True,
        "tok_s_median": 11.0,
        "processes": 2,
    }
    assert got["tuned"]["tokens_same_every_process"] is False
    assert got["cut"] == {"tokens_same_every_process": False, "tok_s_median": 9.0, "processes": 1}


def test_session_39s_autotuned_processes_gave_two_replies_and_pinned_ones_one() -> None:
    autotuned = json.loads(
        (RESULTS / "2026-12-06za-nvidia-h100-same-reply-autotune-stablelm7b.json").read_text()
    )
    pinned = json.loads(
        (RESULTS / "2026-12-06za-nvidia-h100-same-reply-pinned-stablelm7b.json").read_text()
    )
    assert summarise(autotuned["processes"])["tuned"]["tokens_same_every_process"] is False
    assert summarise(pinned["processes"])["pinned"]["tokens_same_every_process"] is True


def test_session_40s_h200_records_one_reply_a_setting_and_gptjs_cost() -> None:
    """On the H200 each setting gave one reply in both processes on every model; on
    novel-gptj-6b the autotuned processes ran faster, with another reply (the doc's -2.8 %)."""
    name = "2026-12-06zb-nvidia-h200-same-reply-{}.json"
    rows = {
        m: json.loads((RESULTS / name.format(m)).read_text())["processes"]
        for m in ("line-3.6b", "gemma-3-270m", "novel-gptj-6b")
    }
    got = {m: summarise(r) for m, r in rows.items()}
    for summary in got.values():
        assert all(s["tokens_same_every_process"] for s in summary.values())
    gptj = got["novel-gptj-6b"]
    digests = {s: rows["novel-gptj-6b"][s][0]["tokens_sha"] for s in ("pinned", "tuned")}
    assert digests["pinned"] != digests["tuned"]
    assert round(gptj["pinned"]["tok_s_median"] / gptj["tuned"]["tok_s_median"] - 1, 3) == -0.028
