"""The scene: her portrait and affection, the dialogue log, suggestions and the player's input."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Static

from serifu_game import story
from serifu_game.affection import judge, mood
from serifu_game.backends.retrieval import RetrievalBackend
from serifu_game.pairs import load_pairs
from serifu_game.state import DAYS, TURNS_PER_SCENE
from serifu_game.suggestions import Suggester
from serifu_game.widgets.affection_meter import AffectionMeter
from serifu_game.widgets.debug_panel import DebugPanel, ReplyStats
from serifu_game.widgets.dialogue_log import DialogueLog, EntryView
from serifu_game.widgets.portrait import Portrait, looks

if TYPE_CHECKING:
    from serifu_game.app import SerifuGame


class SceneScreen(Screen[None]):
    """One day's conversation with her."""

    BINDINGS = [
        Binding("escape", "cancel", "中断"),
        Binding("f12", "toggle_debug", "デバッグ"),
        Binding("ctrl+s", "save", "セーブ"),
        Binding("ctrl+l", "load", "ロード"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._cancel = threading.Event()
        self.busy = False
        self.stats: ReplyStats | None = None
        self.scores: list[float | None] = []
        self._suggestions: list[str] = []

    @property
    def game(self) -> SerifuGame:
        return cast("SerifuGame", self.app)

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        game = self.game
        assert game.state is not None and game.pack is not None
        card = game.pack.card()
        hair = looks(card.id)[0]
        yield Static(id="topbar")
        with Horizontal(id="main"):
            with Vertical(id="side"):
                yield Portrait(card.id, mood=mood(game.state.affection), id="portrait")
                yield Static(f"[b]{card.name}[/b]\n[dim]{card.reading}[/dim]", id="name")
                yield AffectionMeter(id="meter")
                yield Static(
                    f"{card.grade}・{card.club}\n趣味：{'、'.join(card.hobbies)}", id="profile"
                )
            with Vertical(id="talk"):
                yield DialogueLog(color=_readable(hair), id="log")
                yield Vertical(id="suggestions")
                yield Input(
                    placeholder=f"{card.short_name}に話しかける…（1〜3で提案を選択）", id="say"
                )
                yield Static(id="status")
            yield DebugPanel(id="debug")
        yield Footer()

    def on_mount(self) -> None:
        game = self.game
        assert game.state is not None and game.pack is not None
        self.card = game.pack.card()
        self.pairs = load_pairs(game.pack)
        self.suggester = Suggester(self.pairs, self.card.protagonist)
        self._opener = RetrievalBackend(self.pairs, seed=game.state.seed) if self.pairs else None
        self.query_one(AffectionMeter).value = game.state.affection
        self.query_one("#debug").display = False
        log = self.query_one(DialogueLog)
        if game.state.log:
            log.reset(game.state.log)
        else:
            self.begin_scene()
        self.backend_changed()
        self.refresh_top()
        self.refresh_suggestions()
        if game.state.scene_over:
            self.end_of_scene_prompt()
        self.query_one("#say", Input).focus()
        if game.score_replies:
            self.warm_up_scorer()

    def refresh_top(self) -> None:
        state = self.game.state
        assert state is not None
        place = story.place(state.place)
        turns = "◆" * state.turns_left + "◇" * (TURNS_PER_SCENE - state.turns_left)
        self.query_one("#topbar", Static).update(
            f"[b]{state.day}日目[/b] / 全{DAYS}日   {place.icon} {place.name}"
            f"    残りの会話 [#ff7aa2]{turns}[/]"
        )

    def backend_changed(self) -> None:
        """Show which backend answers (after start, load or a settings change)."""
        game = self.game
        assert game.choice is not None
        self.set_status(game.choice.notice)
        if game.choice.kind == "llm":
            self.prepare_backend()

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # -- scene flow --------------------------------------------------------------
    def begin_scene(self) -> None:
        """Narration and her opening line (a real line from her script)."""
        state = self.game.state
        assert state is not None
        place = story.place(state.place)
        log = self.query_one(DialogueLog)
        if state.day == 1:
            narration = story.FIRST_DAY_NARRATION.format(name=self.card.name)
            opener = self.pairs[0] if self.pairs else None
        else:
            narration = story.opening_narration(place, self.card)
            opener = self._opener.best(place.keywords).pair if self._opener else None
        state.script_scene = opener.scene if opener else ""
        log.add(state.add("narration", narration))
        bonus = story.place_bonus(place, self.card) if state.day > 1 else 0
        if bonus:
            state.change_affection(bonus)
            log.add(
                state.add(
                    "event", f"{self.card.short_name}はこの場所が好きみたいだ。（♥ +{bonus}）"
                )
            )
            self.query_one(AffectionMeter).value = state.affection
        log.add(state.add("heroine", opener.reply if opener else "……", self.card.short_name))

    def refresh_suggestions(self) -> None:
        state = self.game.state
        assert state is not None
        box = self.query_one("#suggestions", Vertical)
        box.remove_children()
        if state.scene_over:
            self._suggestions = []
            return
        topic = story.place(state.place).keywords
        seed = state.seed * 1000 + state.day * 10 + state.turns_left
        self._suggestions = self.suggester.suggest(
            topic, seed=seed, scene=state.script_scene, exclude=[u for u, _ in state.history]
        )
        box.mount_all(
            Button(f"{i}. {text}", name=str(i), classes="suggestion", compact=True)
            for i, text in enumerate(self._suggestions, 1)
        )

    @on(Button.Pressed, ".suggestion")
    def _suggestion_pressed(self, event: Button.Pressed) -> None:
        index = int(event.button.name or "1") - 1
        self.say(self._suggestions[index])
        self.query_one("#say", Input).focus()

    @on(Input.Submitted, "#say")
    def _submitted(self, event: Input.Submitted) -> None:
        state = self.game.state
        assert state is not None
        text = event.value.strip()
        if state.scene_over:
            event.input.clear()
            self.next_day()
            return
        if not text:
            return
        if self.busy:
            self.set_status("返事を待っています…（Escで中断）")
            return
        if text in {"1", "2", "3"} and int(text) <= len(self._suggestions):
            text = self._suggestions[int(text) - 1]
        event.input.clear()
        self.say(text)

    def say(self, text: str) -> None:
        """The player says ``text``; her reply streams in from a worker thread."""
        state = self.game.state
        if self.busy or state is None or state.scene_over:
            return
        self.busy = True
        self.query_one(DialogueLog).add(state.add("player", text))
        entry = state.add("heroine", "", self.card.short_name)
        view = self.query_one(DialogueLog).add(entry)
        view.add_class("streaming")
        self._cancel = threading.Event()
        self.set_status(f"{self.card.short_name}が考えています…（Escで中断）")
        self.respond(text, view)

    @work(thread=True, exclusive=True, group="reply")
    def respond(self, text: str, view: EntryView) -> None:
        game = self.game
        state, backend = game.state, game.backend
        assert state is not None and backend is not None
        cancel = self._cancel
        start = time.perf_counter()
        pieces = 0
        error = ""
        try:
            if backend.kind == "llm":
                self.app.call_from_thread(self.set_status, "モデルを準備しています…（Escで中断）")
                backend.prepare()
                start = time.perf_counter()
            for piece in backend.stream(text, list(state.history), cancel):
                pieces += 1
                self.app.call_from_thread(self._stream_piece, view, piece)
        except Exception as exc:  # a failing model must not end the game
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        reply = view.entry.text
        score = None
        if game.score_replies and reply and not error:
            try:
                from serifu_game.scoring import in_character

                score = in_character(self.card.id, reply)
            except Exception as exc:  # the score is a bonus; never fatal
                error = f"in-character score unavailable: {exc}"
        prompt = backend.debug_info(text, list(state.history))
        stats = ReplyStats(backend.label, prompt, pieces, seconds, score)
        self.app.call_from_thread(self.finish_reply, text, view, stats, cancel.is_set(), error)

    def _stream_piece(self, view: EntryView, piece: str) -> None:
        view.append(piece)
        self.query_one(DialogueLog).follow()

    def finish_reply(
        self, text: str, view: EntryView, stats: ReplyStats, cancelled: bool, error: str
    ) -> None:
        state = self.game.state
        assert state is not None
        self.busy = False
        view.remove_class("streaming")
        reply = view.entry.text.strip()
        log = self.query_one(DialogueLog)
        if error and not reply:
            view.entry.text = "……"
            view.refresh_entry()
            log.add(
                state.add(
                    "system",
                    f"返事を作れませんでした（{error}）。設定（Ctrl+O）でバックエンドを変えられます。",
                )
            )
            self.set_status("エラー：" + error)
            return
        if cancelled:
            view.entry.text = (reply or "") + "……"
            view.refresh_entry()
            self.set_status("中断しました。もう一度話しかけてみよう。")
            return
        view.entry.text = reply
        view.refresh_entry()
        state.history.append((text, reply))
        verdict = judge(text, reply, self.card, stats.in_character)
        state.change_affection(verdict.delta)
        stats.affection = verdict.summary()
        self.stats = stats
        self.scores.append(stats.in_character)
        self.query_one(DebugPanel).show_stats(stats, self.scores)
        self.query_one(AffectionMeter).value = state.affection
        self.query_one(Portrait).mood = mood(state.affection)
        for event in story.new_events(state.affection, state.events):
            state.events.append(event.id)
            log.add(state.add("event", story.event_text(event, self.card)))
        state.turns_left -= 1
        self.set_status(verdict.summary())
        self.refresh_top()
        self.refresh_suggestions()
        if state.scene_over:
            self.end_of_scene_prompt()

    def end_of_scene_prompt(self) -> None:
        state = self.game.state
        assert state is not None
        if not state.log or state.log[-1].text != story.DAY_END:
            self.query_one(DialogueLog).add(state.add("narration", story.DAY_END))
        label = "エンディングへ" if state.last_day else "次の日へ"
        self.query_one("#suggestions", Vertical).mount(
            Button(f"▶ {label}（Enter）", classes="next", compact=True)
        )
        self.query_one("#say", Input).placeholder = f"Enterで{label}"

    @on(Button.Pressed, ".next")
    def _next_pressed(self) -> None:
        self.next_day()

    def next_day(self) -> None:
        state = self.game.state
        assert state is not None
        if state.last_day:
            from serifu_game.screens.ending import EndingScreen

            self.app.switch_screen(EndingScreen())
            return
        from serifu_game.screens.day import DayScreen

        def go(place_id: str | None) -> None:
            if place_id is None:
                return
            state.day += 1
            state.place = place_id
            state.turns_left = TURNS_PER_SCENE
            state.history.clear()
            state.log.clear()
            self.query_one(DialogueLog).reset([])
            self.begin_scene()
            self.query_one(
                "#say", Input
            ).placeholder = f"{self.card.short_name}に話しかける…（1〜3で提案を選択）"
            self.refresh_top()
            self.refresh_suggestions()
            self.query_one("#say", Input).focus()

        self.app.push_screen(DayScreen(), go)

    # -- background work ---------------------------------------------------------
    @work(thread=True, exclusive=True, group="prepare")
    def prepare_backend(self) -> None:
        backend = self.game.backend
        if backend is None:
            return
        self.app.call_from_thread(self.set_status, f"{backend.label} を読み込んでいます…")
        try:
            backend.prepare()
        except Exception as exc:
            self.app.call_from_thread(self._backend_failed, f"{type(exc).__name__}: {exc}")
            return
        choice = self.game.choice
        self.app.call_from_thread(self.set_status, choice.notice if choice else "")

    def _backend_failed(self, error: str) -> None:
        """The LLM could not load: say so and fall back to retrieval."""
        game = self.game
        game.settings = game.settings.model_copy(update={"backend": "retrieval"})
        game.rebuild_backend()
        state = game.state
        assert state is not None
        self.query_one(DialogueLog).add(
            state.add(
                "system", f"LLMを読み込めなかったため台本検索モードに切り替えました（{error}）"
            )
        )
        assert game.choice is not None
        self.set_status(game.choice.notice)

    @work(thread=True, exclusive=True, group="scorer")
    def warm_up_scorer(self) -> None:
        try:
            from serifu_game.scoring import cast_classifier

            cast_classifier()
        except Exception:  # scored lazily again (and reported) when a reply comes
            pass

    # -- actions -----------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.busy:
            self._cancel.set()

    def action_toggle_debug(self) -> None:
        panel = self.query_one(DebugPanel)
        panel.display = not panel.display
        panel.show_stats(self.stats, self.scores)

    def action_save(self) -> None:
        from serifu_game.screens.saves import SaveLoadScreen

        if self.busy:
            self.set_status("返事の途中はセーブできません。")
            return

        def done(slot: int | None) -> None:
            if slot is not None:
                self.game.save_to(slot)

        self.app.push_screen(SaveLoadScreen("save", self.game.save_folder), done)

    def action_load(self) -> None:
        from serifu_game.screens.saves import SaveLoadScreen

        def done(slot: int | None) -> None:
            if slot is not None:
                self.game.load_from(slot)

        self.app.push_screen(SaveLoadScreen("load", self.game.save_folder), done)


def _readable(color: str) -> str:
    """A name colour light enough to read on the dark log (dark hair gets lightened)."""
    from textual.color import Color

    c = Color.parse(color)
    return c.lighten(0.35).hex if c.brightness < 0.45 else c.hex
