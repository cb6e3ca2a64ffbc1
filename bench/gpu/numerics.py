"""Honest numerics: on a real small task — gemma-3-270m on a sample heroine's lines (the
report's `lines` job) — the loss curve of Serifu's trainer matches the recipe's.

Both train from the same real weights, batch 8 lines, lr 2e-4, linear decay, same steps;
only the data order and the implementation differ. A third curve is Serifu's GPU profile
(token budget per step, packed rows) over the same 3 epochs, against examples seen.
Writes <out>/numerics.json and <out>/numerics.png.

    python bench/gpu/numerics.py [--model gemma-3-270m] [--character akane] [--steps 60] --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from serifu.config.data import DataConfig
    from serifu.config.train import TrainConfig
    from serifu.data.build import build_character_dataset
    from serifu.training.data import load_dataset_folder
    from serifu.training.recipe import run_recipe
    from serifu.training.trainer import train

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--character", default="akane")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument(
        "--fast-tokens", type=int, default=2048, help="token budget per step of the GPU profile"
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    work = args.out / "work"
    data = work / "data"
    build_character_dataset(args.character, data, config=DataConfig(format="lines"))
    texts = [row["text"] for row in load_dataset_folder(data).splits["train"]]
    t0 = time.perf_counter()
    recipe = run_recipe(
        args.model, texts, work / "recipe", max_steps=args.steps, batch_size=8, learning_rate=2e-4
    )
    t_recipe = time.perf_counter() - t0
    common = {
        "batch_size": 8,
        "learning_rate": 2e-4,
        "eval": False,
        "save_steps": 0,
        "lr_scheduler": "linear",
    }
    t0 = time.perf_counter()
    same = train(
        args.model,
        data,
        work / "serifu",
        TrainConfig(max_steps=args.steps, **common),
        progress=False,
    )
    t_same = time.perf_counter() - t0
    fast_cfg = TrainConfig(
        epochs=3,
        max_tokens=args.fast_tokens,
        pack_row_tokens=2048,
        **(common | {"learning_rate": 1e-3}),
    )
    fast = train(args.model, data, work / "fast", fast_cfg, progress=False)
    per_step = len(texts) / max(1, round(fast.info["steps"] / 3))
    result = {
        "model": args.model,
        "character": args.character,
        "train_lines": len(texts),
        "recipe": {"loss": recipe["loss"], "wall_s": t_recipe, "batch": 8},
        "serifu_same_settings": {"loss": same.info["loss"], "wall_s": t_same, "batch": 8},
        "serifu_gpu_profile": {
            "loss": fast.info["loss"],
            "lines_per_step": per_step,
            "max_tokens": args.fast_tokens,
            "learning_rate": 1e-3,
            "wall_s": fast.info["wall_s"],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "numerics.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot(result, args.out / "numerics.png")
    n = min(len(recipe["loss"]), len(same.info["loss"]))
    tail = slice(n - 10, n)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(
        f"last-10-step mean loss: recipe {mean(recipe['loss'][tail]):.3f}, serifu {mean(same.info['loss'][tail]):.3f};"
        f" GPU profile final {fast.info['loss'][-1]:.3f} after {fast.info['steps']} steps"
    )


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (
        ("recipe", "report recipe (HF Trainer, padded)"),
        ("serifu_same_settings", "Serifu, same settings"),
    ):
        losses = result[key]["loss"]
        ax.plot([8 * (i + 1) for i in range(len(losses))], losses, label=label)
    fast = result["serifu_gpu_profile"]
    ax.plot(
        [fast["lines_per_step"] * (i + 1) for i in range(len(fast["loss"]))],
        fast["loss"],
        "o-",
        label=f"Serifu GPU profile ({fast['max_tokens']} tokens/step, lr 1e-3)",
    )
    ax.set_xlabel("lines seen")
    ax.set_ylabel("training loss")
    ax.set_title(f"{result['model']} on {result['character']}'s lines")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
