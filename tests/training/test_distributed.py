"""Data-parallel training (torchrun, 2 ranks, gloo on the CPU) gives the single-process adapter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _train(data: Path, out: Path, nproc: int) -> None:
    args = [
        "-m", "serifu", "train", "--model", "tiny-llama", "--data", str(data), "--out", str(out),
        "--max-steps", "3", "--set", "train.lora.dropout=0.0", "--set", "train.batch_size=6",
        "--set", "train.eval=false", "--set", "train.save_steps=0", "--json",
    ]  # fmt: skip
    if nproc > 1:
        args = [
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={nproc}",
            "--master_port=29517",
            *args,
        ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_ranks_train_the_same_adapter_as_one(tmp_path: Path, dialogue_data: Path) -> None:
    import torch
    from safetensors.torch import load_file

    _train(dialogue_data, tmp_path / "one", 1)
    _train(dialogue_data, tmp_path / "two", 2)
    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    init = {k: v for k, v in a.items() if "lora_B" in k}
    assert any(v.abs().sum() > 0 for v in init.values())  # it trained
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    info = (tmp_path / "two" / "serifu.json").read_text(encoding="utf-8")
    assert '"world_size": 2' in info


@pytest.fixture
def dialogue_data(tmp_path: Path) -> Path:
    from serifu.config.data import DataConfig
    from serifu.data.build import build_character_dataset

    out = tmp_path / "data"
    build_character_dataset("rei", out, config=DataConfig(format="dialogue"))
    return out
