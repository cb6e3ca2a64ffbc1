"""Nothing executed: cards, saves, plugins, the model and the player are shown as plain text.

Rich/Textual markup in any of them (``[@click=app.screenshot(...)]``, ``[@click=app.quit]``,
``[/x]``) must show literally: clicking it writes no file and quits nothing, and a stray
closing tag crashes no screen. A source check keeps the class closed: no markup strings
in ``serifu_game`` and every text widget created with ``markup=False``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static

import serifu_game
from serifu_game.app import SerifuGame
from serifu_game.screens.day import DayScreen
from serifu_game.screens.ending import EndingScreen
from serifu_game.screens.saves import SaveLoadScreen
from serifu_game.screens.scene import SceneScreen
from serifu_game.screens.title import TitleScreen
from serifu_game.state import GameState
from serifu_game.widgets.dialogue_log import EntryView

from .conftest import SIZE, hostile_text, talk

pytestmark = pytest.mark.anyio

SOURCES = sorted(Path(serifu_game.__file__).parent.rglob("*.py"))
MARKUP = re.compile(
    r"\[(?:/[^\]]*|@[^\]]*|#[0-9a-fA-F]{3,8}\b[^\]]*"
    r"|(?:b|i|u|s|dim|bold|italic|underline|reverse|strike|link|on|not)(?:\s[^\]]*)?)\]"
)
TEXT_WIDGETS = {"Static", "Label", "OptionList"}
"""Widgets that parse ``str`` content as markup unless created with ``markup=False``."""
LABELLED = {"Button", "Option"}
"""Widgets whose ``str`` label is always parsed: only literals or calls of functions
returning ``Content``/``Text`` (``plain(...)``, ``describe(...)``) may go in."""


def _lines(widget: Widget) -> list[str]:
    """The widget's rendered rows as plain text."""
    width, height = widget.size
    return [strip.text for strip in widget.render_lines(Region(0, 0, width, height))]


async def click_text(pilot: object, widget: Widget, needle: str) -> None:
    """Click the middle of ``needle`` where ``widget`` shows it."""
    from rich.cells import cell_len

    for y, line in enumerate(_lines(widget)):
        if needle in line:
            x = cell_len(line[: line.index(needle)]) + 1
            await pilot.click(widget, offset=(x, y))  # type: ignore[attr-defined]
            await pilot.pause()  # type: ignore[attr-defined]
            return
    raise AssertionError(f"{needle!r} is not shown in {widget!r}: {_lines(widget)}")


def _shown(app: SerifuGame) -> str:
    """Everything the current screen shows, as plain text."""
    return "\n".join(line for w in app.screen.query(Widget) for line in _lines(w))


# -- the source check ----------------------------------------------------------------
def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _builders(trees: list[ast.Module]) -> set[str]:
    """Names of the package's functions annotated to return ``Content`` or ``Text``."""
    return {
        node.name
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and node.returns is not None
        and ast.unparse(node.returns) in ("Content", "Text")
    }


def test_the_game_sources_hold_no_markup_and_every_text_widget_is_plain() -> None:
    problems = []
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in SOURCES]
    builders = _builders(trees)
    assert {"plain", "describe", "profile_text"} <= builders
    for path, tree in zip(SOURCES, trees, strict=True):
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docs and MARKUP.search(text):
                problems.append(f"{where}: markup in a string: {text!r}")
            if not isinstance(node, ast.Call):
                continue
            name = _name(node)
            markup = _keyword(node, "markup")
            plain_kw = isinstance(markup, ast.Constant) and markup.value is False
            if (name in TEXT_WIDGETS or name == "notify") and not plain_kw:
                problems.append(f"{where}: {name}(...) without markup=False")
            typer = isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "typer"
            if name in LABELLED and node.args and not typer:
                first = node.args[0]
                literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
                built = isinstance(first, ast.Call) and _name(first) in builders
                if not (literal or built):
                    problems.append(f"{where}: {name}({ast.unparse(first)}) is not plain(...)")
    assert SOURCES and not problems, "\n".join(problems)


def test_the_source_check_catches_markup() -> None:
    assert MARKUP.search("[b]x[/b]") and MARKUP.search("[#ff7aa2]♥[/]")
    assert MARKUP.search("[@click=app.quit]") and MARKUP.search("[dim]")
    assert not MARKUP.search("[scene] 春") and not MARKUP.search("[1, 2]")


# -- hostile saves -------------------------------------------------------------------
def _hostile_save(folder: Path, text: str, character: str = "kaede") -> None:
    state = GameState(character=character, day=2, place="rooftop", affection=40)
    state.add("narration", "屋上。" + text)
    state.add("heroine", "ふん。" + text, "楓")
    state.add("player", "[@click=app.quit]やめて[/]")
    state.history.append((text, text))
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"schema_version": 1, "saved_at": text, "state": state.model_dump(mode="json")}
    (folder / "slot1.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


async def test_markup_in_a_save_is_shown_literally_and_clicking_it_runs_nothing(
    make_game: Callable[..., SerifuGame], tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    text = hostile_text(shots, bad_tags=False)  # parsed, it would be a working link
    _hostile_save(tmp_path / "saves", text)
    app = make_game()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, TitleScreen)
        await pilot.press("ctrl+l")
        assert isinstance(app.screen, SaveLoadScreen)
        slots = app.screen.query_one("#slots", OptionList)
        assert text in str(slots.get_option_at_index(0).prompt)
        assert "[@click=app.screenshot(" in "".join(_lines(slots))
        await click_text(pilot, slots, "押して")  # the link text, if it were markup
        assert isinstance(app.screen, SceneScreen)  # the click chose the slot, nothing else
        log_text = _shown(app)
        assert "[@click=app.quit]やめて[/]" in log_text and "]押して[/]" in log_text
        view = next(v for v in app.screen.query(EntryView) if "ふん。" in v.entry.text)
        await click_text(pilot, view, "押して")
        quit_view = next(v for v in app.screen.query(EntryView) if "やめて" in v.entry.text)
        await click_text(pilot, quit_view, "やめて")
        assert not any(shots.iterdir())
        assert app.return_code is None and isinstance(app.screen, SceneScreen)
        await talk(pilot, "屋上は気持ちいいね")  # still playing
        assert app.state is not None and len(app.state.history) == 2
        assert app.state.history[-1][0] == "屋上は気持ちいいね" and app.state.history[-1][1]
    assert not any(shots.iterdir())


async def test_a_closing_tag_in_a_heroine_name_does_not_break_the_load_screen(
    make_game: Callable[..., SerifuGame], tmp_path: Path, hostile: SimpleNamespace
) -> None:
    _hostile_save(tmp_path / "saves", hostile.text, character="evil")
    app = make_game()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+l")
        assert isinstance(app.screen, SaveLoadScreen)
        shown = "".join(_lines(app.screen.query_one("#slots", OptionList)))
        assert "真壁[@click=app.screenshot(" in shown
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SceneScreen) and app.state is not None
        assert app.state.character == "evil"
    assert not any(hostile.shots.iterdir())


# -- hostile cards, plugin scripts, replies and player input ----------------------------
async def test_a_hostile_card_script_reply_and_player_line_show_literally(
    make_game: Callable[..., SerifuGame], hostile: SimpleNamespace
) -> None:
    text, shots = hostile.text, hostile.shots
    app = make_game()
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, TitleScreen)
        heroines = app.screen.query_one("#heroines", OptionList)
        ids = [heroines.get_option_at_index(i).id for i in range(heroines.option_count)]
        await pilot.press(*["down"] * ids.index("evil"))
        await pilot.pause()
        profile = "".join(_lines(app.screen.query_one("#title-profile", Static)))
        assert "真壁[@click=app.screenshot(" in profile and "[b]陸上部" in profile
        await click_text(pilot, app.screen.query_one("#title-profile", Static), "押して")
        assert not any(shots.iterdir()) and isinstance(app.screen, TitleScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SceneScreen)
        assert "真壁[@click=app.screenshot(" in "".join(_lines(app.screen.query_one("#name")))
        assert "[/x]楓に話しかける" in app.screen.query_one("#say", Input).placeholder

        await talk(pilot, text)  # the player's own line, and a reply matched to it
        state = app.state
        assert state is not None and state.log[-2].text == text
        reply = state.log[-1]
        assert reply.kind == "heroine" and reply.speaker == "[/x]楓"
        assert "[/x]" in reply.text  # her hostile script line came back verbatim
        player_view = next(v for v in app.screen.query(EntryView) if v.entry.text == text)
        await click_text(pilot, player_view, "押して")
        await pilot.press("f12")  # the debug panel shows the matched pair
        assert "[/x]" in "".join(_lines(app.screen.query_one("#debug-body")))
        assert not any(shots.iterdir()) and app.return_code is None

        state.turns_left = 1
        await talk(pilot, "陸上部の練習、がんばってるね")
        await pilot.press("enter")  # next day: her hint in the place list
        assert isinstance(app.screen, DayScreen)
        places = "".join(_lines(app.screen.query_one("#places", OptionList)))
        assert "[/x]楓の好きな場所かも" in places
        await pilot.press("escape")
        state.day = 5
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EndingScreen)
        assert "[/x]楓" in "".join(_lines(app.screen.query_one("#ending-story")))
    assert not any(shots.iterdir())


async def test_toasts_show_markup_literally(make_game: Callable[..., SerifuGame]) -> None:
    app = make_game(character="kaede")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.tell("セーブできませんでした：[/x] [@click=app.quit]終了[/]", severity="error")
        await pilot.pause()
        toast = app.screen.query("Toast").last()
        assert "[/x] [@click=app.quit]終了[/]" in str(toast.render())
        assert app.return_code is None
