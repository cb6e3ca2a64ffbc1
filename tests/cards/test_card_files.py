"""Character Card V2/V3 import and export: round trips, spec examples, malformed files."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from serifu import plugins
from serifu.cards import export_card, import_card, read_card_file
from serifu.cards import png as pngmod
from serifu.characters import load_card, system_prompt
from serifu.errors import SerifuError

UNKNOWN_EXTENSIONS = {
    "talkativeness": "0.5",
    "fav": False,
    "world": None,
    "depth_prompt": {"prompt": "{{char}} is shy.", "depth": 4, "role": "system"},
    "risuai": {"utilityBot": False, "customScripts": [{"in": "a", "out": "b"}]},
}
BOOK = {
    "name": "Mina's book",
    "scan_depth": 5,
    "token_budget": 500,
    "recursive_scanning": False,
    "extensions": {"st": {"x": 1}},
    "entries": [
        {
            "keys": ["cat", "猫"],
            "content": "三毛猫のタマ",
            "extensions": {"position": 0, "weird": None},
            "enabled": True,
            "insertion_order": 10,
            "name": "飼い猫",
            "priority": 3,
            "id": 1,
            "selective": False,
            "secondary_keys": [],
            "constant": False,
        },
        {
            "keys": ["town"],
            "content": "The town is by the sea.\nIt rains a lot.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 20,
        },
    ],
}


def v2_example() -> dict[str, Any]:
    """A card shaped like the V2 spec's example, with a lorebook and foreign extensions."""
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Mina",
            "description": "{{char}} is {{user}}'s classmate.",
            "personality": "cheerful, curious",
            "scenario": "After school in the library.",
            "first_mes": "*looks up* Oh, hi {{user}}!",
            "mes_example": (
                "<START>\n{{user}}: What are you reading?\n{{char}}: A book about 「cats」!\n"
                "It has pictures.\n<START>\n<USER>: Bye.\n<BOT>: See you!"
            ),
            "creator_notes": "Made for testing.",
            "system_prompt": "",
            "post_history_instructions": "Stay in character.",
            "alternate_greetings": ["Hey!", "Hello there."],
            "character_book": BOOK,
            "tags": ["school", "test"],
            "creator": "serifu-tests",
            "character_version": "1.2",
            "extensions": UNKNOWN_EXTENSIONS,
        },
    }


def v3_example() -> dict[str, Any]:
    card = v2_example()
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    card["data"].update(
        nickname="ミナ",
        group_only_greetings=["Hi everyone!"],
        source=["https://example.invalid/mina"],
        creation_date=1700000000,
        assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
    )
    return card


def b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj, ensure_ascii=False).encode()).decode()


def card_png(tmp_path: Path, name: str, texts: dict[str, str]) -> Path:
    path = tmp_path / name
    path.write_bytes(pngmod.with_text_chunks(pngmod.blank_png(2, 2), texts, path))
    return path


def test_v2_spec_example_imports(tmp_path: Path, packs_dir: Path) -> None:
    path = tmp_path / "mina.json"
    path.write_text(json.dumps(v2_example()), encoding="utf-8")
    folder = import_card(path)
    assert folder == packs_dir / "mina"
    card = load_card(folder / "card.toml")
    assert (card.id, card.name, card.short_name, card.personality) == (
        "mina",
        "Mina",
        "Mina",
        "cheerful, curious",
    )
    assert card.alternate_greetings == ["Hey!", "Hello there."] and card.tags == ["school", "test"]
    assert card.interop["extensions"] == UNKNOWN_EXTENSIONS
    assert card.interop["character_book"] == BOOK
    assert card.facts() == [("lore:飼い猫", "飼い猫", "三毛猫のタマ")]
    prompt = system_prompt(card)
    assert (
        "Mina is 主人公's classmate." in prompt and "状況：After school in the library." in prompt
    )
    assert "飼い猫：三毛猫のタマ" in prompt and "It rains" not in prompt
    script = (folder / "script.txt").read_text(encoding="utf-8").splitlines()
    assert script == [
        "[scene] 例1",
        "【主人公】「What are you reading?」",
        "【Mina】「A book about 『cats』! It has pictures.」",
        "[scene] 例2",
        "【主人公】「Bye.」",
        "【Mina】「See you!」",
    ]
    # The registered pack: the plugin hook picks it up, and her script reads as lines.
    from serifu.data.characters import character_utterances

    said = [(u.speaker, u.text) for u in character_utterances(plugins.get_character("mina"))]
    assert said[1] == ("Mina", "A book about 『cats』! It has pictures.") and len(said) == 4


def test_png_prefers_ccv3_over_chara(tmp_path: Path, packs_dir: Path) -> None:
    old = v2_example()
    old["data"]["name"] = "Old Mina"
    path = card_png(tmp_path, "both.png", {"chara": b64(old), "ccv3": b64(v3_example())})
    loaded = read_card_file(path)
    assert loaded.spec == "chara_card_v3" and loaded.data["name"] == "Mina"
    card = load_card(import_card(path) / "card.toml")
    assert card.short_name == "ミナ"
    assert card.interop["data"]["group_only_greetings"] == ["Hi everyone!"]
    assert (packs_dir / "mina" / "portrait.png").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("fmt", ["ccv2", "ccv3"])
def test_foreign_card_round_trip_keeps_everything(
    fmt: str, tmp_path: Path, packs_dir: Path
) -> None:
    source = tmp_path / "mina.json"
    source.write_text(json.dumps(v3_example() if fmt == "ccv3" else v2_example()), encoding="utf-8")
    first = load_card(import_card(source) / "card.toml")
    out = tmp_path / f"again.{'png' if fmt == 'ccv2' else 'charx'}"
    export_card(plugins.get_character("mina"), fmt=fmt, out=out)
    exported = read_card_file(out)
    original = json.loads(source.read_text())["data"]
    for key, value in original.items():
        if key != "extensions":
            assert exported.data[key] == value, key
    assert {
        k: v for k, v in exported.data["extensions"].items() if k != "serifu"
    } == UNKNOWN_EXTENSIONS
    second = load_card(import_card(out, card_id="mina2") / "card.toml")
    assert second.model_dump(exclude={"id"}) == first.model_dump(exclude={"id"})


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("ccv2", "png"), ("ccv3", "png"), ("ccv3", "json"), ("ccv3", "charx"), ("ccv2", "json")],
)
def test_sample_heroine_round_trip(fmt: str, suffix: str, tmp_path: Path, packs_dir: Path) -> None:
    original = plugins.get_character("akane").card()
    out = tmp_path / f"akane.{suffix}"
    proc = run_cli(["characters", "export", "akane", "--format", fmt, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    spec = read_card_file(out)
    assert spec.spec == ("chara_card_v3" if fmt == "ccv3" else "chara_card_v2")
    assert spec.data["description"] == system_prompt(original)  # what other front ends show
    assert spec.data["mes_example"].startswith("<START>\n{{user}}: ")
    assert [e["name"] for e in spec.data["character_book"]["entries"]][:2] == ["読み", "年齢"]
    assert spec.data["extensions"]["serifu"]["base_model"] == "gemma-3-270m"
    if suffix == "png":
        texts = pngmod.text_chunks(out.read_bytes(), out)
        assert set(texts) == ({"chara", "ccv3"} if fmt == "ccv3" else {"chara"})
    proc = run_cli(["characters", "import", str(out), "--id", "akane-copy"])
    assert proc.returncode == 0, proc.stderr
    copy = load_card(packs_dir / "akane-copy" / "card.toml")
    assert copy.model_dump(exclude={"id"}) == original.model_dump(exclude={"id"})
    assert not copy.questions_generated and system_prompt(copy) == system_prompt(original)
    assert (
        (packs_dir / "akane-copy" / "script.txt")
        .read_text(encoding="utf-8")
        .startswith("[scene] 例1\n【主人公】「")
    )


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serifu", *args], capture_output=True, text=True, timeout=300
    )


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def malformed(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = pngmod.with_text_chunks(pngmod.blank_png(), {"chara": b64(v2_example())}, "x")
    cases: dict[str, tuple[bytes, str, str]] = {
        "bad_base64": (
            pngmod.with_text_chunks(pngmod.blank_png(), {"chara": "not*base64!"}, "x"),
            "png",
            "not valid base64",
        ),
        "truncated_png": (good[: len(good) // 2], "png", "truncated PNG"),
        "huge_chunk": (
            pngmod.SIGNATURE + struct.pack(">I4s", 2**31, b"tEXt") + b"chara\x00AAAA",
            "png",
            "over the 16777216 byte limit",
        ),
        "bad_crc": (good[:-5] + b"\x00" + good[-4:], "png", "bad CRC"),
        "no_card_png": (pngmod.blank_png(), "png", "no character card"),
        "non_utf8": (
            b'{"spec": "chara_card_v2", "data": {"name": "\xff\xfe"}}',
            "json",
            "not UTF-8",
        ),
        "not_json": (b'{"spec": ', "json", "not valid JSON"),
        "wrong_spec": (
            json.dumps({**v2_example(), "spec": "chara_card_v9"}).encode(),
            "json",
            "unsupported card spec 'chara_card_v9'",
        ),
        "wrong_version": (
            json.dumps({**v2_example(), "spec_version": "3.0"}).encode(),
            "json",
            "version '3.0'",
        ),
        "no_name": (
            json.dumps(
                {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": ""}}
            ).encode(),
            "json",
            "no data object with a name",
        ),
        "bad_types": (
            json.dumps(
                {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "A", "tags": "x"}}
            ).encode(),
            "json",
            "'tags' is not a list",
        ),
        "not_zip": (b"PK\x03\x04garbage", "charx", "not a readable .charx"),
        "japanese_name_needs_id": (
            json.dumps(
                {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "美奈"}}
            ).encode(),
            "json",
            "give one with --id",
        ),
    }
    out = {}
    for name, (data, suffix, message) in cases.items():
        path = tmp_path / f"{name}.{suffix}"
        path.write_bytes(data)
        out[name] = (path, message)
    charx = tmp_path / "no_card.charx"
    with zipfile.ZipFile(charx, "w") as zf:
        zf.writestr("other.json", "{}")
    out["charx_without_card"] = (charx, "has no card.json")
    return out


def test_malformed_files_give_clear_errors_and_write_nothing(
    tmp_path: Path, packs_dir: Path
) -> None:
    packs_dir.mkdir()
    (packs_dir / "keep").mkdir()
    before = sorted(p.name for p in packs_dir.iterdir())
    for name, (path, message) in malformed(tmp_path).items():
        with pytest.raises(SerifuError) as info:
            import_card(path)
        assert message in str(info.value), (name, str(info.value))
        assert str(path) in str(info.value), name
        assert sorted(p.name for p in packs_dir.iterdir()) == before, name


def test_cli_import_error_is_one_paragraph(tmp_path: Path, packs_dir: Path) -> None:
    path, message = malformed(tmp_path)["bad_base64"]
    proc = run_cli(["characters", "import", str(path)])
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not packs_dir.exists()


def test_existing_pack_is_not_replaced_without_force(tmp_path: Path, packs_dir: Path) -> None:
    path = tmp_path / "mina.json"
    path.write_text(json.dumps(v2_example()), encoding="utf-8")
    import_card(path)
    with pytest.raises(SerifuError, match="use --force"):
        import_card(path)
    assert import_card(path, force=True) == packs_dir / "mina"


def test_an_id_in_use_by_another_pack_is_refused(tmp_path: Path, packs_dir: Path) -> None:
    out = tmp_path / "akane.json"
    export_card(plugins.get_character("akane"), fmt="ccv2", out=out)
    with pytest.raises(SerifuError, match="'akane' is already registered"):
        import_card(out)
    assert not packs_dir.exists()
