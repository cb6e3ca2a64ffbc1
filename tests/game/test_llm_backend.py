"""The llm backend with a tiny model, and torch staying unloaded until it is used."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from serifu.characters import system_prompt
from serifu_game.app import SerifuGame
from serifu_game.screens.scene import SceneScreen

from .conftest import SIZE, talk

pytestmark = pytest.mark.anyio


async def test_llm_reply_streams_from_a_worker_with_the_profile_prompt(
    make_game: Callable[..., SerifuGame],
) -> None:
    app = make_game(character="kaede", backend="llm", model="tiny-gemma")
    async with app.run_test(size=SIZE) as pilot:
        assert app.choice is not None and app.choice.kind == "llm"
        await pilot.press(*"こんにちは", "enter")
        await pilot.press("f12")  # keys still work while the model loads in its thread
        screen = app.screen
        assert isinstance(screen, SceneScreen) and screen.query_one("#debug").display
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not screen.busy and app.state is not None
        assert app.state.log[-1].kind == "heroine"
        assert app.state.history and app.state.history[0][0] == "こんにちは"
        stats = screen.stats
        assert stats is not None and stats.pieces >= 1 and stats.seconds > 0
        card = app.pack.card()  # type: ignore[union-attr]
        assert system_prompt(card) in stats.prompt and "こんにちは" in stats.prompt


def test_torch_is_not_imported_by_a_retrieval_game() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from serifu_game.app import SerifuGame

        async def main():
            app = SerifuGame(character="kaede", backend="retrieval", text_speed=0.0,
                             score_replies=True)
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.press(*"一緒に走ろう", "enter")
                await app.workers.wait_for_complete()
                await pilot.pause()
                assert app.state.log[-1].kind == "heroine" and app.state.log[-1].text
            print("torch" in sys.modules, "transformers" in sys.modules)

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "False"], out.stderr[-2000:]


async def test_the_status_line_says_loading_only_while_the_model_loads(
    make_game: Callable[..., SerifuGame],
) -> None:
    app = make_game(character="kaede", backend="llm", model="tiny-gemma", score_replies=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SceneScreen)
        await app.workers.wait_for_complete()  # the model loads once, in a worker
        await pilot.pause()
        assert sum("読み込んでいます" in s for s in screen.statuses) == 1
        assert app.backend is not None and app.backend.ready
        for line in ("こんにちは", "部活どう？"):
            seen = len(screen.statuses)
            await talk(pilot, line)
            turn = screen.statuses[seen:]
            assert turn[0] == "楓が考えています…（Escで中断）", turn
            assert turn[1] == "楓が話しています…（Escで中断）", turn  # her first piece is in
            assert turn[-1].startswith("♥"), turn  # the verdict
            assert not any("読み込んでいます" in s for s in turn)
        loaded = app.backend
        await pilot.press("ctrl+s", "enter")  # save, then load: the model stays loaded
        await pilot.pause()
        await pilot.press("ctrl+l", "enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        screen = app.screen
        assert isinstance(screen, SceneScreen) and "スロット1をロードしました" in app.messages
        assert app.backend is loaded
        assert not any("読み込んでいます" in s for s in screen.statuses)
