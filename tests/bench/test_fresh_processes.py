"""bench/gpu/fresh_processes.py (each contender alone in a fresh process, session 32; runs of
one machine merged, session 35) and decode_levers' idle-gap profile: the parts that run
without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.gpu.decode_levers import idle_gaps
from bench.gpu.fresh_processes import LEVERS, PEER, command, merge, row_of, summarise


def test_each_process_runs_one_contender_alone() -> None:
    peer = command("stablelm-beta-7b", PEER, "/tmp/x.json", 3, 100)  # type: ignore[arg-type]
    assert peer[peer.index("--variants") + 1] == "" and "--peer" in peer
    one = command("stablelm-beta-7b", "default", "/tmp/x.json", 3, 100)  # type: ignore[arg-type]
    assert one[one.index("--variants") + 1] == "default" and "--peer" not in one
    assert one[one.index("--budget-s") + 1] == "100"


def test_rows_come_from_the_record_or_say_they_are_missing() -> None:
    record = {"hf_static": {"tok_s": 150.0}, "variants": {"default": {"tok_s": 230.0}}}
    assert row_of(record, PEER)["tok_s"] == 150.0
    assert row_of(record, "default")["tok_s"] == 230.0
    assert "error" in row_of(record, "gemv-residual")


def _row(tok_s: float) -> dict[str, float]:
    return {"tok_s": tok_s, "first_ms": 14.0, "decode_tok_s": tok_s * 1.05}


def test_the_summary_takes_medians_over_processes_and_ratios_to_the_peer() -> None:
    rows = {
        PEER: [_row(150.0), _row(160.0), _row(140.0)],
        "default": [_row(240.0), _row(225.0), {"error": "over 150 s"}],
    }
    s = summarise(rows)
    assert s[PEER]["tok_s"] == 150.0 and s[PEER]["processes"] == 3
    assert s["default"]["processes"] == 2 and s["default"]["failed"] == 1
    assert s["default"]["tok_s"] == pytest.approx(232.5)
    assert s["default"]["x_hf"] == pytest.approx(232.5 / 150.0, abs=1e-3)
    # round by round: round 3's variant failed, so two ratios
    assert s["default"]["x_hf_per_round"] == [1.6, round(225 / 160, 3)]
    best = max(r["tok_s"] for r in rows[PEER])  # against the peer's fastest process
    assert best > s[PEER]["tok_s"] and s["default"]["x_hf_best"] == round(232.5 / best, 3)


def test_no_ratio_without_a_peer_that_ran() -> None:
    s = summarise({PEER: [{"error": "exit 1"}], "default": [_row(230.0)]})
    assert "x_hf" not in s["default"] and s[PEER]["failed"] == 1


def test_idle_gaps_bin_the_time_no_kernel_ran() -> None:
    # kernels at [0,10], [11,20] (1 µs gap), [15,18] (inside), [30,40] (10 µs), [140,150] (100 µs)
    spans = [(30.0, 40.0), (0.0, 10.0), (11.0, 20.0), (15.0, 18.0), (140.0, 150.0)]
    g = idle_gaps(spans, tokens=2)
    assert g["span_us_per_token"] == 75.0
    assert g["idle_us_per_token"] == pytest.approx(111 / 2)
    assert g["idle_to_4us_per_token"] == 0.5 and g["gaps_to_4us_per_token"] == 0.5
    assert g["idle_4_to_50us_per_token"] == 5.0
    assert g["idle_over_50us_per_token"] == 50.0 and g["gaps_over_50us_per_token"] == 0.5
    assert idle_gaps([], 48)["idle_us_per_token"] == 0.0


def test_every_way_of_reading_a_reply_gives_the_same_tokens() -> None:
    """decode_levers' ``host`` / ``launched`` variants read the reply as the product does
    (greedy_ahead) or with the next chunk launched first: the tokens of ``greedy``."""
    import torch

    from bench.gpu.decode_levers import _reply
    from serifu.accel.decode import StaticDecoder
    from serifu.modeling import load_model, resolve_base

    torch.manual_seed(0)
    model = load_model(resolve_base("tiny-llama"), quantize=False, device="cpu").eval()
    ids = torch.randint(3, 300, (1, 20))
    mask = torch.ones_like(ids)
    dec = StaticDecoder(model, max_len=40, batch_size=1, graph=False, chunk=4)
    ref = _reply(dec, ids, mask, 11)
    assert ref.shape == (1, 11)
    for run in ("host", "launched"):
        assert torch.equal(_reply(dec, ids, mask, 11, run), ref), run


def _record(peer: list[float], default: list[float], gpu: str = "NVIDIA H200") -> dict[str, Any]:
    processes = {
        PEER: [_row(t) | {"round": i, "gpu": gpu} for i, t in enumerate(peer)],
        "default": [_row(t) | {"round": i, "gpu": gpu} for i, t in enumerate(default)],
    }
    return {
        "model": "stablelm-beta-7b",
        "how": "fresh",
        "rounds": len(peer),
        "processes": processes,
    }


def test_runs_of_one_machine_merge_into_one_summary() -> None:
    a, b = _record([150.0, 160.0], [230.0, 232.0]), _record([140.0], [236.0])
    joined = merge([a, b], ["a.json", "b.json"])
    assert joined["rounds"] == 3 and joined["merged_from"] == ["a.json", "b.json"]
    assert [r["round"] for r in joined["processes"]["default"]] == [0, 1, 2]
    assert joined["summary"] == summarise(
        {
            PEER: [_row(150.0), _row(160.0), _row(140.0)],
            "default": [_row(t) for t in (230.0, 232.0, 236.0)],
        }
    )
    assert joined["summary"]["default"]["x_hf_per_round"][2] == round(236 / 140, 3)


def test_runs_of_other_models_or_cards_do_not_merge() -> None:
    a = _record([150.0], [230.0])
    with pytest.raises(ValueError, match="different GPUs"):
        merge([a, _record([150.0], [230.0], gpu="NVIDIA H100 80GB HBM3")], ["a", "b"])
    with pytest.raises(ValueError, match="different models"):
        merge([a, _record([150.0], [230.0]) | {"model": "line-3.6b"}], ["a", "b"])


def test_the_merge_command_writes_the_joined_record(tmp_path: Path) -> None:
    files = []
    for i, rec in enumerate((_record([150.0], [230.0]), _record([140.0], [236.0]))):
        files.append(tmp_path / f"run{i}.json")
        files[-1].write_text(json.dumps(rec), encoding="utf-8")
    out = tmp_path / "joined.json"
    cmd = [sys.executable, str(LEVERS.with_name("fresh_processes.py")), "--out", str(out)]
    done = subprocess.run([*cmd, "--merge", *map(str, files)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["summary"]["default"]["processes"] == 2
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps(_record([1.0], [2.0]) | {"model": "x"}), encoding="utf-8")
    done = subprocess.run(
        [*cmd, "--merge", str(files[0]), str(bad)], capture_output=True, text=True
    )
    assert done.returncode != 0 and "cannot merge" in done.stderr and "Traceback" not in done.stderr


def test_the_summary_says_whether_every_process_gave_the_same_tokens() -> None:
    rows = {
        PEER: [_row(150.0)],
        "default": [_row(230.0) | {"tokens_sha": "a"}, _row(231.0) | {"tokens_sha": "a"}],
        "kv-write-shared": [_row(233.0) | {"tokens_sha": "a"}, _row(234.0) | {"tokens_sha": "b"}],
        "old": [_row(229.0)],  # a record from before the digests: nothing said
    }
    s = summarise(rows)
    assert s["default"]["tokens_same_every_process"] and s["default"]["tokens_equal_first"]
    lever = s["kv-write-shared"]
    assert not lever["tokens_same_every_process"] and not lever["tokens_equal_first"]
    assert "tokens_equal_first" not in s["old"] and "tokens_equal_first" not in s[PEER]


def test_timing_warms_up_before_the_host_probe() -> None:
    from bench.gpu.decode_levers import _timing
    from bench.gpu.generate_speed import NEW

    calls: list[int] = []
    row = _timing(calls.append, repeats=2, warmup=3)
    # three warm-ups outside the probe; inside it one warm and two timed replies, then one
    # warm and two timed first tokens: the probe's counts are per warm call
    assert calls == [NEW] * 6 + [1] * 3
    assert row["host"]["calls"] == 6 and row["tok_s"] > 0


def test_session_40s_h200_record_gives_the_ratios_the_doc_states() -> None:
    """The issue's card: stablelm-beta-7b's summary recomputed from the stored processes (the
    doc's 1.592x against the peer's median, 1.590x against its fastest process, one reply)."""
    results = Path(__file__).resolve().parents[2] / "bench" / "results"
    record = json.loads(
        (results / "2026-12-06zb-nvidia-h200-fresh-processes-stablelm7b.json").read_text()
    )
    got = summarise(record["processes"])
    assert got == record["summary"]
    assert {r["gpu"] for runs in record["processes"].values() for r in runs} == {"NVIDIA H200"}
    default = got["default"]
    assert default["x_hf"] == 1.592 and default["x_hf_best"] == 1.59
    assert min(default["x_hf_per_round"]) > 1.5 and default["tokens_same_every_process"]
