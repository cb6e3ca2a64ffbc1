"""Ctrl-C saves a checkpoint; --resume ends with the same adapter as an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from serifu.config.train import TrainConfig
from serifu.errors import SerifuError
from serifu.training import train
from serifu.training.checkpoint import checkpoint_dir

CFG = TrainConfig(
    max_steps=6, batch_size=4, learning_rate=5e-3, save_steps=0, eval=False, lr_scheduler="cosine"
)


def _interrupt_at(step: int):
    def on_step(done: int, loss: float) -> None:
        if done == step:
            raise KeyboardInterrupt

    return on_step


def test_interrupted_and_resumed_equals_uninterrupted(dialogue_dir: Path, tmp_path: Path) -> None:
    straight = train("tiny-llama", dialogue_dir, tmp_path / "a", CFG, progress=False)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        train("tiny-llama", dialogue_dir, out, CFG, progress=False, on_step=_interrupt_at(3))
    assert not out.exists() and (checkpoint_dir(out) / "lora.safetensors").is_file()
    resumed = train("tiny-llama", dialogue_dir, out, CFG, resume=True, progress=False)
    assert resumed.info["loss"][:3] == straight.info["loss"][:3]
    assert resumed.info["loss"] == pytest.approx(straight.info["loss"], rel=1e-4)
    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert not checkpoint_dir(out).exists()


def test_resume_without_checkpoint_is_a_user_error(dialogue_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SerifuError, match="no checkpoint"):
        train("tiny-llama", dialogue_dir, tmp_path / "c", CFG, resume=True, progress=False)
