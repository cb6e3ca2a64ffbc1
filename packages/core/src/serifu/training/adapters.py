"""Reading an adapter folder written by ``serifu train``, with clear errors.

:func:`read_adapter` checks the folder before any model loads (missing or damaged files,
an adapter trained for another base model); :func:`attach_adapter` loads the LoRA onto a
base and turns PEFT's shape errors into the same kind of message. An adapter whose layer
names happen to match another base would otherwise load and silently do nothing useful.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SerifuError(f"damaged adapter file, not valid JSON ({exc})", path=path) from None
    if not isinstance(value, dict):
        raise SerifuError("damaged adapter file: not a JSON object", path=path)
    return value


def read_adapter(folder: Path, base_id: str | None = None) -> dict[str, Any]:
    """``serifu.json`` of the adapter in ``folder`` ({} when it has none), after checking
    the folder holds a LoRA adapter and, given ``base_id``, that it was trained on that base."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SerifuError("no adapter folder here (it does not exist or is a file)", path=folder)
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise SerifuError("not a LoRA adapter folder (no adapter_config.json)", path=folder)
    config = read_json_object(config_file)
    if "peft_type" not in config or "target_modules" not in config:
        raise SerifuError(
            "damaged adapter_config.json (no peft_type or target_modules)", path=config_file
        )
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise SerifuError(
            "the adapter has no weights (adapter_model.safetensors is missing)", path=folder
        )
    info_file = folder / "serifu.json"
    info = read_json_object(info_file) if info_file.is_file() else {}
    if base_id is not None:
        check_adapter_base(info, base_id, folder)
    return info


def check_adapter_base(info: dict[str, Any], base_id: str, folder: Path) -> None:
    """An adapter whose ``serifu.json`` names another base model is an error."""
    trained_on = info.get("base_model")
    if trained_on is not None and str(trained_on) != base_id:
        raise SerifuError(
            f"this adapter was trained on the base model {trained_on!r}, not {base_id!r}: "
            f"on another base it has no meaning; use --model {trained_on} (or leave --model out)",
            path=folder,
        )


def attach_adapter(model: Any, folder: Path) -> Any:
    """``PeftModel.from_pretrained`` with clear errors for weights that do not fit the base."""
    from peft import PeftModel
    from safetensors import SafetensorError

    try:
        return PeftModel.from_pretrained(model, str(folder), use_safetensors=True)
    except (RuntimeError, ValueError, KeyError, SafetensorError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise SerifuError(
            f"the adapter does not fit this base model or is damaged ({first})", path=folder
        ) from None
