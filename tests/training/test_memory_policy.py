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
    assert result.info["gradient_checkpointing"] == info["gradient_checkpointing"]
