"""Resolving ``--model``: a plugin id, a local folder, or a hub id."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError

# model_type -> (template, LoRA targets) for folders and hub ids that are not plugins
_BY_MODEL_TYPE: dict[str, tuple[str, tuple[str, ...]]] = {
    "gpt_neox": ("line", ("query_key_value",)),
    "gptj": ("novel", ("q_proj", "v_proj")),
    "llama": ("llama2", ("q_proj", "v_proj")),
    "gemma3_text": ("gemma", ("q_proj", "v_proj")),
    "gemma3": ("gemma", ("q_proj", "v_proj")),
}


@dataclass
class ResolvedBase:
    """What to load for one ``--model`` value."""

    id: str
    """Plugin id, or the path / hub id as given."""
    template: str
    lora_targets: tuple[str, ...]
    plugin: Any | None = None
    """The :class:`serifu.kinds.BaseModelPlugin`, when ``--model`` named one."""
    add_special_tokens: bool = True
    generation: dict[str, Any] = field(default_factory=dict)
    _source: str | None = None

    def source(self) -> str:
        """Folder or hub id to load weights from (plugins may convert/build on first call)."""
        if self._source is None:
            assert self.plugin is not None
            self._source = str(self.plugin.weights())
        return self._source


def _model_type(folder: Path) -> str | None:
    try:
        return str(
            json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
        )
    except (OSError, ValueError):
        return None


def resolve_base(model: str) -> ResolvedBase:
    """Plugin id first, then an existing local folder, else a hub id (``owner/name``)."""
    from serifu import plugins

    registered = plugins.base_models()
    if model in registered:
        p = registered[model].item
        return ResolvedBase(
            id=p.id,
            template=p.template,
            lora_targets=tuple(p.lora_targets),
            plugin=p,
            add_special_tokens=bool(p.add_special_tokens),
            generation=dict(p.generation),
        )
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SerifuError("not a model folder (no config.json in it)", path=path)
        template, targets = _BY_MODEL_TYPE.get(_model_type(path) or "", ("line", ("all-linear",)))
        return ResolvedBase(
            id=str(path), template=template, lora_targets=targets, _source=str(path)
        )
    if model.count("/") == 1 and not model.startswith((".", "/")):
        return ResolvedBase(id=model, template="line", lora_targets=("all-linear",), _source=model)
    known = ", ".join(sorted(registered)) or "none"
    raise SerifuError(
        f"unknown model {model!r}: not a registered base model ({known}), "
        "not an existing folder, and not a hub id of the form owner/name"
    )
