"""Pilot tests: the whole loop in a headless terminal, with the real sample cast."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.events import Paste
from textual.widgets import Button, Input, OptionList

from serifu import plugins
from serifu_game.app import SerifuGame
from serifu_game.pairs import load_pairs
from serifu_game.screens.day import DayScreen
from serifu_game.screens.ending import EndingScreen
from serifu_game.screens.saves import SaveLoadScreen
from serifu_game.screens.scene import SceneScreen
from serifu_game.screens.settings import SettingsScreen
from serifu_game.screens.title import TitleScreen
from serifu_game.widgets.debug_panel import DebugPanel
from serifu_game.widgets.dialogue_log import EntryView

from .conftest import SIZE, talk

pytestmark = pytest.mark.anyio


def log_texts(app: SerifuGame) -> list[str]:
    return [v.entry.text for v in app.screen.query(EntryView)]


async def test_start_choose_talk_save_load(
    make_game: Callable[..., SerifuGame], tmp_path: Path
) -> None:
    app = make_game()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, TitleScreen)
        ids = list(plugins.characters())
        await pilot.press(*["down"] * ids.index("kaede"), "enter")
        await pilot.pause()
        assert isinstance(app.screen, SceneScreen) and app.state is not None
        assert app.state.character == "kaede"
        assert app.focused is app.screen.query_one("#say", Input)

        await talk(pilot, "カツ丼好きなんだ")  # Japanese typed key by key
        state = app.state
        assert state.log[-2].kind == "player" and state.log[-2].text == "カツ丼好きなんだ"
        reply = state.log[-1]
        assert reply.kind == "heroine" and reply.speaker == "楓"
        assert reply.text in {p.reply for p in load_pairs(plugins.get_character("kaede"))}
        assert reply.text in log_texts(app)
        assert state.turns_left == 2 and state.history == [("カツ丼好きなんだ", reply.text)]
        assert state.affection > 20  # her favourite food, asked about kindly

        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SaveLoadScreen)
        await pilot.press("enter")  # slot 1
        await pilot.pause()
        saved = json.loads((tmp_path / "saves" / "slot1.json").read_text(encoding="utf-8"))
        assert saved["state"]["affection"] == state.affection

        await talk(pilot, "2")  # a suggested line by its number
        assert app.state.turns_left == 1 and len(app.state.history) == 2

        await pilot.press("ctrl+l")
        assert isinstance(app.screen, SaveLoadScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SceneScreen)
        assert app.state.turns_left == 2 and app.state.history == [("カツ丼好きなんだ", reply.text)]
        assert reply.text in log_texts(app)
        assert "スロット1をロードしました" in app.messages


async def test_corrupt_save_shows_a_message_and_the_game_goes_on(
    make_game: Callable[..., SerifuGame], tmp_path: Path
) -> None:
    (tmp_path / "saves").mkdir()
    (tmp_path / "saves" / "slot1.json").write_text("{broken", encoding="utf-8")
    app = make_game(character="rei")
    async with app.run_test(size=SIZE) as pilot:
        before = list(app.state.log) if app.state else []
        await pilot.press("ctrl+l")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SceneScreen)
        assert any("壊れています" in m for m in app.messages)
        assert app.state is not None and app.state.log == before
        await talk(pilot, "チェスしよう")
        assert app.state.log[-1].kind == "heroine" and app.state.log[-1].text


async def test_debug_panel_shows_match_and_in_character_score(
    make_game: Callable[..., SerifuGame],
) -> None:
    app = make_game(character="kaede")
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(DebugPanel)
        assert not panel.display
        await talk(pilot, "100メートル何秒で走るんだ")
        await pilot.press("f12")
        assert panel.display
        screen = app.screen
        assert isinstance(screen, SceneScreen)
        stats = screen.stats
        assert stats is not None and stats.in_character is not None
        assert stats.in_character > 0.3  # her own line: the cast classifier knows her
        assert "BM25" in stats.prompt and stats.pieces > 1


async def test_escape_cancels_a_reply(make_game: Callable[..., SerifuGame]) -> None:
    app = make_game(character="kaede", text_speed=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"部活どう", "enter")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.state is not None
        assert app.state.log[-1].text.endswith("……")
        assert app.state.turns_left == 3 and app.state.history == []  # nothing counted


async def test_days_lead_to_an_ending(make_game: Callable[..., SerifuGame]) -> None:
    app = make_game(character="yuzuha")
    async with app.run_test(size=SIZE) as pilot:
        assert app.state is not None
        for _ in range(3):
            await talk(pilot, "1")
        assert app.state.scene_over
        await pilot.press("enter")
        assert isinstance(app.screen, DayScreen)
        await pilot.press("down", "enter")  # the rooftop
        await pilot.pause()
        assert (app.state.day, app.state.place, app.state.turns_left) == (2, "rooftop", 3)
        assert app.state.log[0].kind == "narration" and "屋上" in app.state.log[0].text
        app.state.day, app.state.affection = 5, 90
        for _ in range(3):
            await talk(pilot, "お菓子作り、すごいね")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EndingScreen)
        assert app.screen.ending.id == "true"


async def test_settings_switch_the_backend(
    make_game: Callable[..., SerifuGame], tmp_path: Path
) -> None:
    app = make_game(character="hina")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, SettingsScreen)
        await pilot.click("#backend-auto")
        app.screen.query_one("#adapter", Input).value = str(tmp_path / "nowhere")
        await pilot.click("#ok")
        await pilot.pause()
        saved = json.loads((tmp_path / "settings.json").read_text(encoding="utf-8"))
        assert saved["adapter"] == str(tmp_path / "nowhere")
        await app.workers.wait_for_complete()  # the llm is tried, fails: back to retrieval
        await pilot.pause()
        assert app.choice is not None and app.choice.kind == "retrieval"
        assert any("LLMを読み込めなかった" in e.text for e in app.state.log)  # type: ignore[union-attr]


async def test_title_preview_follows_the_highlight(make_game: Callable[..., SerifuGame]) -> None:
    app = make_game()
    async with app.run_test(size=SIZE) as pilot:
        heroines = app.screen.query_one("#heroines", OptionList)
        await pilot.press("down")
        second = heroines.get_option_at_index(1).id
        assert second is not None and heroines.highlighted == 1
        card = plugins.get_character(second).card()
        profile = str(app.screen.query_one("#title-profile").render())
        assert card.name in profile and card.club in profile


async def test_the_input_box_has_a_length_limit_that_says_so(
    make_game: Callable[..., SerifuGame], tmp_path: Path
) -> None:
    from serifu_game.settings import GameSettings, save_settings

    save_settings(GameSettings(max_input_chars=10), tmp_path / "settings.json")
    app = make_game(character="kaede")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SceneScreen)
        say = screen.query_one("#say", Input)
        await pilot.press(*"あいうえおかきくけこさし")
        assert say.value == "あいうえおかきくけこ"
        assert screen.statuses[-1].startswith("一度に話せるのは10文字までです")
        say.value = ""
        await pilot.press("x")
        say.post_message(Paste("y" * 5000))  # a long paste is refused as a whole
        await pilot.pause()
        assert say.value == "x" and "10文字まで" in screen.statuses[-1]
        screen.say("長" * 11)  # the same limit for any line, not only typed ones
        assert app.state is not None and app.state.history == [] and not screen.busy

        await pilot.press("ctrl+o")
        assert isinstance(app.screen, SettingsScreen)
        limit = app.screen.query_one("#max-input", Input)
        limit.value = "5"
        await pilot.click("#ok")
        await pilot.pause()  # the reason appears, and the buttons move down
        assert isinstance(app.screen, SettingsScreen)  # refused, with the reason shown
        problem = str(app.screen.query_one("#settings-problem").render())
        assert "max_input_chars" in problem
        limit.value = "30"
        app.screen.query_one("#ok", Button).press()  # (a second click there is a double click)
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, SceneScreen) and say.max_length == 30
        saved = json.loads((tmp_path / "settings.json").read_text(encoding="utf-8"))
        assert saved["max_input_chars"] == 30
