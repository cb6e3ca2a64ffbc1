"""Imported character packs: a folder of pack folders (``SERIFU_CHARACTERS``).

Each pack folder is ``<dir>/<id>/`` with ``card.toml``, an optional ``script.txt`` (her
example dialogue) and an optional ``portrait.png``. The built-in plugin
``serifu.builtin.character_packs`` registers them through ``register_characters``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from serifu.characters import CharacterPack, load_card
from serifu.errors import SerifuError


def characters_dir() -> Path:
    """``$SERIFU_CHARACTERS``, else ``~/.config/serifu/characters``."""
    env = os.environ.get("SERIFU_CHARACTERS")
    if env:
        return Path(env).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "serifu" / "characters"


def pack_from_folder(folder: Path) -> CharacterPack:
    script = folder / "script.txt"
    adapters = {
        a.name: a
        for a in sorted((folder / "adapters").glob("*"))
        if (a / "adapter_config.json").is_file()
    }
    return CharacterPack(
        id=folder.name,
        card_path=folder / "card.toml",
        scripts=[script] if script.is_file() else [],
        source="script",
        adapters=adapters,
    )


def import_card(
    path: Path, *, into: Path | None = None, card_id: str | None = None, force: bool = False
) -> Path:
    """Read a card file and write its pack folder; returns the folder. Nothing is half-written."""
    from serifu.cards.convert import card_from_data, example_script
    from serifu.cards.files import read_card_file
    from serifu.cards.toml_out import card_toml
    from serifu.fsutil import atomic_output_dir

    loaded = read_card_file(Path(path))
    card = card_from_data(loaded.data, card_id, str(path))
    text = card_toml(card)
    folder = (into or characters_dir()) / card.id
    _check_free(card.id, folder)
    if folder.exists() and not force:
        raise SerifuError(
            "a pack with this id exists; use --force to replace it or --id", path=folder
        )
    with atomic_output_dir(folder, overwrite=True) as tmp:
        (tmp / "card.toml").write_text(text, encoding="utf-8")
        if load_card(tmp / "card.toml") != card:  # what we wrote reads back the same
            raise SerifuError(
                "internal error: the written card.toml does not read back", path=folder
            )
        mes_example = loaded.data.get("mes_example")
        script = example_script(card, mes_example if isinstance(mes_example, str) else "")
        if script:
            (tmp / "script.txt").write_text(script, encoding="utf-8")
        if loaded.portrait is not None:
            (tmp / "portrait.png").write_bytes(loaded.portrait)
    from serifu import plugins

    plugins.reset()  # the registry is rebuilt with the new pack on next use
    return folder


def export_card(pack: CharacterPack, *, fmt: str, out: Path, portrait: Path | None = None) -> None:
    """Write ``pack`` as a V2 or V3 card file (``.png``, ``.json`` or ``.charx``)."""
    from serifu.cards.convert import data_from_card, script_example
    from serifu.cards.files import write_card_file

    if fmt not in ("ccv2", "ccv3"):
        raise SerifuError(f"unknown format {fmt!r}; use ccv2 or ccv3")
    card = pack.card()
    script = "\n".join(p.read_text(encoding="utf-8") for p in pack.scripts if p.is_file())
    example = script_example(card, script)
    extra: dict[str, Any] = {}
    if pack.adapters:
        extra["adapters"] = {base: path.name for base, path in pack.adapters.items()}
        extra["base_model"] = sorted(pack.adapters)[0]
    v2 = data_from_card(card, version=2, example=example, serifu_extra=extra)
    v3 = (
        data_from_card(card, version=3, example=example, serifu_extra=extra)
        if fmt == "ccv3"
        else None
    )
    image: bytes | None = None
    source = portrait or (pack.card_path.parent / "portrait.png")
    if portrait is not None and not portrait.is_file():
        raise SerifuError("portrait not found", path=portrait)
    if source.is_file():
        image = source.read_bytes()
    if Path(out).suffix.lower() == ".charx" and v3 is not None and image is not None:
        v3["data"]["assets"] = [
            {
                "type": "icon",
                "uri": "embeded://assets/icon/images/main.png",
                "name": "main",
                "ext": "png",
            }
        ]
    write_card_file(Path(out), v2, v3, image)


def _check_free(card_id: str, folder: Path) -> None:
    """An id another registered pack already uses would be rejected as a duplicate."""
    from serifu import plugins

    taken = plugins.characters().get(card_id)
    if taken is not None and taken.item.card_path.parent.resolve() != folder.resolve():
        raise SerifuError(
            f"a character with the id {card_id!r} is already registered ({taken.provider}); "
            "import under another id with --id"
        )
