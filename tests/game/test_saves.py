"""Save slots: validated on load (clear message, never a crash or nonsense), atomic writes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from serifu_game.app import SerifuGame
from serifu_game.save import SaveError, list_slots, read_slot, write_slot
from serifu_game.screens.scene import SceneScreen
from serifu_game.state import MAX_TEXT, GameState

from .conftest import SIZE


def _valid() -> dict[str, Any]:
    state = GameState(character="kaede", day=3, place="club", affection=57, turns_left=2)
    state.add("heroine", "ふん、負けないから！", "楓")
    state.history.append(("勝負しよう", "受けて立つわよ！"))
    return {"schema_version": 1, "saved_at": "2026-01-01T10:00:00", "state": state.model_dump()}


def _write(folder: Path, payload: object, slot: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    (folder / f"slot{slot}.json").write_text(text, encoding="utf-8")


BAD_STATES: list[tuple[str, object, str]] = [
    ("affection", -50, "affection = -50 は 0〜100 の範囲外"),
    ("affection", 99999, "affection = 99999 は 0〜100 の範囲外"),
    ("day", 99, "day = 99 は 1〜5 の範囲外"),
    ("day", -1, "day = -1 は 1〜5 の範囲外"),
    ("day", 0, "day = 0 は 1〜5 の範囲外"),
    ("day", "3", "day の型が違います"),
    ("day", 3.0, "day の型が違います"),
    ("affection", True, "affection の型が違います"),
    ("turns_left", 7, "turns_left = 7 は 0〜3 の範囲外"),
    ("place", "moon", "unknown place 'moon'"),
    ("events", ["smile", "smile"], "events"),
    ("events", ["wedding"], "events"),
    ("character", "../../etc", "character"),
    ("character", 5, "character の型が違います"),
    ("history", [["only one"]], "history"),
    ("history", [["a", "b"]] * 4, "history が長すぎます"),
    ("log", [{"kind": "heroine", "text": "x" * (MAX_TEXT + 1)}], "log.0.text が長すぎます"),
    ("log", [{"kind": "script", "text": "x"}], "log.0.kind"),
    ("cheat", 1, "cheat は知らない項目です"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_STATES)
def test_nonsense_in_a_save_is_refused_with_a_message_naming_it(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    payload = _valid()
    payload["state"][key] = value
    _write(tmp_path, payload)
    with pytest.raises(SaveError) as caught:
        read_slot(1, tmp_path)
    text = str(caught.value)
    assert "スロット1のセーブデータが不正です" in text and str(tmp_path) in text
    assert message in text, text
    assert [bool(i.problem) for i in list_slots(tmp_path)] == [True, False, False]


def test_a_missing_character_and_foreign_files_are_refused(tmp_path: Path) -> None:
    payload = _valid()
    del payload["state"]["character"]
    _write(tmp_path, payload)
    with pytest.raises(SaveError, match="character がありません"):
        read_slot(1, tmp_path)
    for foreign, message in [
        ("[1, 2]", "セーブデータではありません"),
        ('{"schema_version": [1], "state": {}}', "別の版"),
        ("[" * 100_000, "壊れています"),
        ("\udcff", "壊れています"),
    ]:
        (tmp_path / "slot1.json").write_bytes(foreign.encode("utf-8", "surrogateescape"))
        with pytest.raises(SaveError, match=message):
            read_slot(1, tmp_path)
    (tmp_path / "slot1.json").write_bytes(b" " * 3_000_000)
    with pytest.raises(SaveError, match="大きすぎます"):
        read_slot(1, tmp_path)


def test_random_damage_gives_a_save_error_or_a_valid_state(tmp_path: Path) -> None:
    good = json.dumps(_valid(), ensure_ascii=False).encode("utf-8")
    rng = random.Random(14)
    for i in range(300):
        data = bytearray(good)
        if i % 3 == 0:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        (tmp_path / "slot1.json").write_bytes(bytes(data))
        try:
            state, _ = read_slot(1, tmp_path)
        except SaveError as exc:
            assert str(exc).startswith("スロット1")
        else:
            assert 0 <= state.affection <= 100 and 1 <= state.day <= 5


def test_writes_are_atomic_and_only_loadable_states_are_written(tmp_path: Path) -> None:
    state = GameState(character="kaede", affection=42)
    path = write_slot(1, state, tmp_path)
    before = path.read_bytes()
    assert read_slot(1, tmp_path)[0] == state
    state.affection = 500  # nonsense set in memory is never written
    with pytest.raises(SaveError, match="affection = 500"):
        write_slot(1, state, tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slot1.json"]  # no temp file left


@pytest.mark.anyio
async def test_loading_a_nonsense_save_says_why_and_the_game_goes_on(
    make_game: Callable[..., SerifuGame], tmp_path: Path
) -> None:
    payload = _valid()
    payload["state"]["affection"] = 99999
    _write(tmp_path / "saves", payload)
    app = make_game(character="kaede")
    async with app.run_test(size=SIZE) as pilot:
        before = app.state
        await pilot.press("ctrl+l")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SceneScreen) and app.state is before
        assert any("affection = 99999 は 0〜100 の範囲外" in m for m in app.messages)
        assert app.state is not None and app.state.affection == 20
