"""``serifu quickstart``: the main job end to end on the embedded default, on the CPU.

1. build a sample heroine's dialogue dataset from her pack's script;
2. 4-bit QLoRA-tune the default base model (:func:`serifu.modeling.default_model`,
   Gemma 3 270M with ``serifu-models``) on it for a bounded number of steps;
3. evaluate base and tuned on the 111-query protocol (a subset by default) —
   classifier share, profile-QA, perplexity, one-line stops;
4. print the comparison, and open the game with the adapter just trained (through the
   ``play`` hook, :func:`play`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError


@dataclass
class QuickstartPlan:
    character: str = "akane"
    model: str = ""
    """Base-model id; empty: :func:`serifu.modeling.default_model`."""
    out: Path = Path("runs/quickstart")
    steps: int = 40
    batch_size: int = 8
    learning_rate: float = 1e-3
    system_prompt: bool = False
    """Train and evaluate without the profile prompt: ~40-token examples keep CPU steps short."""
    limit: int = 12
    """Queries per evaluation (openers first, then profile questions); 0 = all 111."""
    evaluators: tuple[str, ...] = ("character-classifier", "profile-qa", "perplexity", "format")


def set_threads(n: int) -> None:
    """Torch CPU threads for the whole job (two competing threads on two cores were
    several times slower than one in our measurements)."""
    import torch

    torch.set_num_threads(max(1, n))


def run(plan: QuickstartPlan, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run steps 1-3; return a summary with the output folders and the comparison rows."""
    from serifu.config.data import DataConfig
    from serifu.config.train import TrainConfig
    from serifu.data.build import build_character_dataset
    from serifu.evaluation.compare import compare_rows, render_compare
    from serifu.evaluation.runner import EvalRequest, evaluate
    from serifu.modeling import default_model
    from serifu.training.trainer import train

    plan.model = plan.model or default_model()
    out = plan.out
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    say(f"[1/3] Building {plan.character}'s dialogue dataset ...")
    data = build_character_dataset(
        plan.character, out / "data", config=DataConfig(format="dialogue")
    )
    say(f"      splits: {data.splits}")
    timings["data_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say(f"[2/3] 4-bit QLoRA on {plan.model}: {plan.steps} steps of {plan.batch_size} replies ...")
    config = TrainConfig(
        max_steps=plan.steps,
        batch_size=plan.batch_size,
        learning_rate=plan.learning_rate,
        system_prompt=plan.system_prompt,
        save_steps=0,
    )
    result = train(plan.model, out / "data", out / "adapter", config)
    timings["train_s"] = time.perf_counter() - t0
    say(
        f"      loss {result.loss_first:.3f} -> {result.loss_last:.3f}, "
        f"{result.info['steps_per_s']:.2f} steps/s, {result.tokens_per_s:.0f} tokens/s"
    )

    t0 = time.perf_counter()
    say(f"[3/3] Evaluating base vs tuned on {plan.limit or 111} queries ...")
    runs = {}
    for name, adapter in (("base", None), ("tuned", out / "adapter")):
        request = EvalRequest(
            model=plan.model,
            character=plan.character,
            out=out / f"eval-{name}",
            adapter=adapter,
            system_prompt="on" if plan.system_prompt else "off",
            limit=plan.limit or None,
            evaluators=list(plan.evaluators),
            data=out / "data",
        )
        evaluate(request)
        runs[name] = request.out
    timings["eval_s"] = time.perf_counter() - t0
    rows = compare_rows(list(runs.values()))
    say(render_compare(rows))
    say("      time: " + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in timings.items()))
    return {
        "out": str(out),
        "data": str(out / "data"),
        "adapter": str(out / "adapter"),
        "eval": {k: str(v) for k, v in runs.items()},
        "train": result.summary(),
        "compare": rows,
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }


def play(character: str, model: str, adapter: str) -> None:
    """Open the installed front end (``play`` hook: the game) with the tuned adapter."""
    from serifu import plugins

    handled = plugins.get_plugin_manager().hook.play(
        character=character, model=model, adapter=adapter
    )
    if not handled:
        raise SerifuError(
            "no installed plugin can play (the game is `pip install serifu-game`); "
            f"the adapter is in {adapter}: try `serifu chat --adapter {adapter}`"
        )
