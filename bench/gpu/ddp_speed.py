"""Data-parallel speed-up of Serifu's trainer on the `dialogue` workload.

Launch the same global steps on 1 and on 2 GPUs, then combine:
    torchrun --nproc_per_node=1 bench/gpu/ddp_speed.py --model stablelm-beta-7b --json-out ddp-1.json
    torchrun --nproc_per_node=2 bench/gpu/ddp_speed.py --model stablelm-beta-7b --json-out ddp-2.json
    python bench/gpu/ddp_speed.py --combine ddp-1.json ddp-2.json --out bench/results/FILE.json
Each rank builds the same random 4-bit model (seeded) and takes every world-th example of
each step (serifu.training.distributed); LoRA gradients are summed in one all-reduce.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import Record, append_results, peak_gib, peak_gib_reset, random_model
from bench.gpu.train_speed import SERIFU, _examples, timed_steps


def run(args: argparse.Namespace) -> None:
    from serifu import plugins
    from serifu.config.train import TrainConfig
    from serifu.training.distributed import init_distributed, shutdown
    from serifu.training.trainer import add_lora, make_optimizer, step_plan, use_fast_attention

    dist = init_distributed()
    dev = (
        dist.device
        if dist is not None and torch.cuda.is_available()
        else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    if dev.startswith("cuda:"):  # under torchrun with one process dist is None: plain "cuda"
        torch.cuda.set_device(dev)
    model = random_model(args.model, quantize=True)
    peak_gib_reset()  # the peak of training, not of building the bf16 model before quantising
    settings = dict(SERIFU["dialogue"])
    if args.max_tokens:
        settings.update(max_tokens=args.max_tokens, pack_row_tokens=min(2048, args.max_tokens))
    config = TrainConfig(max_steps=args.steps, save_steps=0, eval=False, **settings)
    examples, _ = _examples("dialogue", model.config.get_text_config().vocab_size, args.examples)
    peft_model = add_lora(
        model, config, tuple(plugins.get_base_model(args.model).lora_targets), quantized=True
    )
    use_fast_attention(peft_model, config, dev)
    peft_model.train()
    steps, _ = step_plan([len(e) for e in examples], config)
    optimizer, scheduler, trainable = make_optimizer(peft_model, config, len(steps))
    times, tokens, _ = timed_steps(peft_model, examples, steps, config, dev=dev, dist=dist)
    world = dist.world if dist is not None else 1
    if dist is None or dist.main:
        rates = [n / t for n, t in zip(tokens[2:], times[2:], strict=True)]
        result = {
            "world": world,
            "tokens_per_s": statistics.median(rates),
            "steps": len(rates),
            "peak_gib": peak_gib(),
            "settings": settings,
        }
        Path(args.json_out).write_text(json.dumps(result), encoding="utf-8")
        print(
            f"world {world}: {result['tokens_per_s']:.0f} tok/s over {len(rates)} steps", flush=True
        )
    shutdown(dist)


def combine(paths: list[Path], out: Path, model: str) -> None:
    one, two = (json.loads(p.read_text(encoding="utf-8")) for p in paths)
    rec = Record(
        model,
        f"dialogue-ddp{two['world']}",
        "real_tokens_per_s",
        round(two["tokens_per_s"], 1),
        round(one["tokens_per_s"], 1),
        "tok/s",
        {"serifu": round(two["peak_gib"], 2), "baseline": round(one["peak_gib"], 2)},
        repeats=min(one["steps"], two["steps"]),
        notes=f"baseline = the same Serifu trainer on 1 GPU; serifu = {two['world']} GPUs, same global steps;"
        f" {two['settings']}",
    )
    append_results([rec], out)
    print(f"speed-up {two['tokens_per_s'] / one['tokens_per_s']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="stablelm-beta-7b")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--examples", type=int, default=1024)
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--json-out", default="ddp.json")
    ap.add_argument("--combine", nargs=2, type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.combine:
        combine(args.combine, args.out, args.model)
    else:
        run(args)


if __name__ == "__main__":
    main()
