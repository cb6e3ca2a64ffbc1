"""``train.gradient_checkpointing = "auto"``: the decision from plain numbers, the estimate
against the peaks measured on the H200, and what a CPU run records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.config.train import TrainConfig
from serifu.training.memory_policy import (
    GIB,
    activation_bytes,
    decide,
    model_dims,
    step_tokens,
)


def test_auto_turns_checkpointing_off_only_when_the_step_fits_with_margin() -> None:
    fits = decide("auto", free_bytes=100 * GIB, estimate_bytes=40 * GIB, step_tokens=16384)
    assert fits.on is False and "fits" in fits.reason and fits.estimate_gib == 40.0
    # 1.25 x 76 + 2 = 97 <= 100 fits; 1.25 x 80 + 2 = 102 > 100 does not
    assert decide("auto", free_bytes=100 * GIB, estimate_bytes=76 * GIB).on is False
    tight = decide("auto", free_bytes=100 * GIB, estimate_bytes=80 * GIB)
    assert tight.on is True and "does not fit" in tight.reason and tight.free_gib == 100.0


def test_explicit_settings_win_and_cpu_keeps_it_off() -> None:
    assert decide(True, free_bytes=10**15, estimate_bytes=1).on is True
    assert decide(False, free_bytes=1, estimate_bytes=10**15).on is False
    cpu = decide("auto", free_bytes=None, estimate_bytes=None)
    assert cpu.on is False and "not on a GPU" in cpu.reason
    with pytest.raises(ValueError, match="true, false or 'auto'"):
        decide("sometimes", free_bytes=None, estimate_bytes=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model_id", "measured_gib", "weights_gib"),
    [  # no-checkpointing peaks at 16,384 tokens per step (dialogue), H200 ablation 2026-11-29
        ("line-3.6b", 43.7, 2.6),
        ("novel-gptj-6b", 96.5, 4.1),
        ("stablelm-beta-7b", 89.1, 4.2),
    ],
)
def test_estimate_covers_the_measured_peaks_of_the_report_models(
    model_id: str, measured_gib: float, weights_gib: float
) -> None:
    from serifu import plugins
    from serifu.training.loss import CHUNK_BYTES

    dims = model_dims(plugins.get_base_model(model_id).build_config())
    estimate = activation_bytes(**dims, tokens=16384, chunk_bytes=CHUNK_BYTES) / GIB
    activations = measured_gib - weights_gib
    assert activations <= estimate < 2.0 * activations
    # an H200 (~135 GiB free once the weights are loaded) trains these steps without it
    assert decide("auto", free_bytes=135 * GIB, estimate_bytes=int(estimate * GIB)).on is False
    # a 24 GiB card keeps checkpointing on
    assert decide("auto", free_bytes=24 * GIB, estimate_bytes=int(estimate * GIB)).on is True


def test_config_accepts_auto_true_false_and_the_step_budget() -> None:
    assert TrainConfig().gradient_checkpointing == "auto"
    assert TrainConfig(gradient_checkpointing=True).gradient_checkpointing is True
    assert TrainConfig(gradient_checkpointing=False).gradient_checkpointing is False
    with pytest.raises(ValueError):
        TrainConfig(gradient_checkpointing="sometimes")  # type: ignore[arg-type]
    assert step_tokens(TrainConfig(max_tokens=4096)) == 4096
    assert step_tokens(TrainConfig(batch_size=8, max_length=512)) == 4096


def test_cpu_run_records_the_decision_in_serifu_json(dialogue_dir: Path, tmp_path: Path) -> None:
    from serifu.training import train

    cfg = TrainConfig(max_steps=1, batch_size=4, save_steps=0, eval=False, report_to="none")
    result = train("tiny-gemma", dialogue_dir, tmp_path / "a", cfg, progress=False)
    info = json.loads((tmp_path / "a" / "serifu.json").read_text(encoding="utf-8"))
    assert info["config"]["gradient_checkpointing"] == "auto"
    assert info["gradient_checkpointing"]["on"] is False
    assert "not on a GPU" in info["gradient_checkpointing"]["reason"]
    assert info["gradient_checkpointing"]["layers"] == 0
    assert result.info["gradient_checkpointing"] == info["gradient_checkpointing"]


def test_a_run_records_how_many_layers_it_checkpoints(lines_dir: Path, tmp_path: Path) -> None:
    from serifu.training import train

    cfg = TrainConfig(
        max_steps=1, max_tokens=128, save_steps=0, eval=False, report_to="none",
        gradient_checkpointing=True, checkpoint_every=2,
    )  # fmt: skip
    train("tiny-llama", lines_dir, tmp_path / "a", cfg, progress=False)
    info = json.loads((tmp_path / "a" / "serifu.json").read_text(encoding="utf-8"))
    recorded = info["gradient_checkpointing"]
    assert recorded["on"] is True and recorded["every"] == 2
    assert recorded["layers"] == 1  # tiny-llama's 2 layers, every 2nd: layer 0


def test_when_the_step_does_not_fit_auto_checkpoints_as_few_layers_as_fit() -> None:
    partial = {2: 50 * GIB, 3: 70 * GIB, 32: 85 * GIB}
    # 1.25 x 85 + 2 = 108 > 100; 1.25 x 70 + 2 = 89.5 fits: 11 of 32 layers, not 16
    some = decide("auto", free_bytes=100 * GIB, estimate_bytes=90 * GIB, partial=partial)
    assert some.on is True and some.every == 3 and "1 layer in 3 (~70.0 GiB)" in some.reason
    tight = decide("auto", free_bytes=60 * GIB, estimate_bytes=90 * GIB, partial=partial)
    assert tight.on is True and tight.every == 1 and "1 layer in" not in tight.reason
    # the user's own every is kept where nothing is chosen
    assert decide("auto", free_bytes=60 * GIB, estimate_bytes=90 * GIB, every=4).every == 4
    assert decide(True, free_bytes=None, estimate_bytes=None, every=2).every == 2
    fits = decide("auto", free_bytes=200 * GIB, estimate_bytes=90 * GIB, partial=partial)
    assert fits.on is False
    config = some.resolve(TrainConfig())
    assert config.gradient_checkpointing is True and config.checkpoint_every == 3


def test_partial_choices_cover_each_count_of_checkpointed_layers_once() -> None:
    from serifu.training.memory_policy import every_nth, partial_choices

    choices = partial_choices(32)
    counts = [every_nth(32, n) for n in choices]
    assert counts == sorted(set(counts), reverse=True) and counts[0] == 16 and counts[-1] == 1
    assert set(counts) == {every_nth(32, n) for n in range(2, 33)}
    assert partial_choices(1) == []


@pytest.mark.parametrize(
    ("model_id", "every_2_gib", "all_gib", "weights_gib"),
    [  # 16,384-token dialogue steps, H200 ablation 2026-11-29: every 2nd layer / every layer
        ("line-3.6b", 24.9, 7.2, 2.6),
        ("novel-gptj-6b", 52.6, 11.8, 4.1),
        ("stablelm-beta-7b", 49.1, 11.5, 4.2),
    ],
)
def test_partial_estimates_cover_the_measured_peaks(
    model_id: str, every_2_gib: float, all_gib: float, weights_gib: float
) -> None:
    from serifu import plugins
    from serifu.training.loss import CHUNK_BYTES
    from serifu.training.memory_policy import every_nth

    dims = model_dims(plugins.get_base_model(model_id).build_config())
    layers = dims["layers"]

    def estimate(every: int) -> float:
        checkpointed = every_nth(layers, every)
        kept = activation_bytes(
            **dims, tokens=16384, chunk_bytes=CHUNK_BYTES, checkpointed=checkpointed
        )
        return kept / GIB

    for every, measured in ((2, every_2_gib), (1, all_gib)):
        activations = measured - weights_gib
        assert activations <= estimate(every) < 2.0 * activations, every


def test_an_80_gib_card_checkpoints_half_of_stablelms_layers() -> None:
    """stablelm-beta-7b's 16k-token step: an H200 trains it without checkpointing, an H100
    (~74 GiB free with the 4-bit weights loaded) with every 2nd layer, a 24 GiB card with all."""
    from serifu import plugins
    from serifu.training.loss import CHUNK_BYTES
    from serifu.training.memory_policy import every_nth, partial_choices

    dims = model_dims(plugins.get_base_model("stablelm-beta-7b").build_config())
    layers = dims["layers"]
    full = activation_bytes(**dims, tokens=16384, chunk_bytes=CHUNK_BYTES)
    partial = {
        n: activation_bytes(
            **dims, tokens=16384, chunk_bytes=CHUNK_BYTES, checkpointed=every_nth(layers, n)
        )
        for n in partial_choices(layers)
    }
    got = {
        free: decide("auto", free_bytes=free * GIB, estimate_bytes=full, partial=partial)
        for free in (135, 74, 24)
    }
    assert got[135].on is False
    assert got[74].on is True and got[74].every == 2
    assert got[24].on is True and got[24].every == 1
