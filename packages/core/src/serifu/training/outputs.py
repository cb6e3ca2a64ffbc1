"""What a training run writes next to the adapter: ``serifu.json`` and a model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def versions() -> dict[str, str]:
    from serifu.versions import versions as library_versions

    return library_versions()


def write_run_files(folder: Path, info: dict[str, Any]) -> None:
    (folder / "serifu.json").write_text(
        json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    (folder / "README.md").write_text(model_card(info), encoding="utf-8")


def model_card(info: dict[str, Any]) -> str:
    ds = info["dataset"]
    cfg = info["config"]
    lora = cfg["lora"]
    eval_loss = info.get("eval_loss")
    lines = [
        "---",
        f"base_model: {info['base_source']}",
        "library_name: peft",
        "tags: [serifu, lora, qlora, role-play]",
        "---",
        "",
        f"# Serifu character adapter: {ds.get('character') or 'unknown character'}",
        "",
        f"A LoRA adapter for **{info['base_model']}** trained by Serifu on "
        f"{ds['train_examples']} `{ds['format']}` examples"
        + (" (with the character's system prompt)." if info["system_prompt"] else "."),
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{info['base_model']}` ({'NF4 4-bit' if cfg['quantize_4bit'] else 'full precision'}) |",
        f"| prompt template | `{info['template']}` |",
        f"| LoRA | r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, targets={', '.join(info['lora_targets'])} |",
        f"| steps | {info['steps']} (batch {cfg['batch_size']}, lr {cfg['learning_rate']}, {cfg['lr_scheduler']}) |",
        f"| loss | first {info['loss_first']:.4f}, last {info['loss_last']:.4f}"
        + (f", validation {eval_loss:.4f}" if eval_loss is not None else "")
        + " |",
        f"| speed | {info['tokens_per_s']:.1f} tokens/s, {info['wall_s']:.1f} s, peak {info['peak_gib']:.2f} GiB on {info['device']} |",
        f"| dataset | `{ds['path']}` (build.json sha256 `{ds['build_sha256'][:12]}`) |",
        "",
        "## Use",
        "",
        "```",
        f"serifu chat --adapter {info['out']}"
        + (f" --character {ds['character_id']}" if ds.get("character_id") else ""),
        "```",
        "",
    ]
    return "\n".join(lines)
