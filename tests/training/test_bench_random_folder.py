"""bench/gpu/random_folder.py: a plugin's architecture with random weights and the tiny
tokenizer, as a folder the product's ``serifu train --model FOLDER`` trains on (the GPU
bench's stand-in for weights the machine does not have)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_the_folder_is_the_plugins_architecture_and_trains(lines_dir: Path, tmp_path: Path) -> None:
    from bench.gpu.random_folder import write_random_folder
    from serifu import plugins
    from serifu.config.train import TrainConfig
    from serifu.training import train

    torch.set_num_threads(1)
    folder = write_random_folder("tiny-gemma", tmp_path / "model")
    want = plugins.get_base_model("tiny-gemma").build_config()
    from transformers import AutoConfig

    got = AutoConfig.from_pretrained(folder)
    assert got.model_type == want.model_type and got.vocab_size == want.vocab_size
    assert got.num_hidden_layers == want.num_hidden_layers and got.pad_token_id == 0
    config = TrainConfig(max_steps=2, save_steps=0, eval=False, report_to="none")
    result = train(str(folder), lines_dir, tmp_path / "out", config, progress=False)
    assert result.steps == 2 and result.info["template"] == "gemma"
