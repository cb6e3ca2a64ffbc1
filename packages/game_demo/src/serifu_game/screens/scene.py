"""The scene: her portrait and affection, the dialogue log, suggestions and the player's input.

The rules (turns, affection, events, days) are :class:`~serifu_game.session.GameSession`'s;
this screen renders its state and runs her reply in a worker thread. Everything shown is
plain text (:func:`~serifu_game.plain.plain`).
"""

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

from serifu_game.pairs import load_pairs
from serifu_game.plain import plain
from serifu_game.session import GameSession, RuleError
from serifu_game.suggestions import Suggester
from serifu_game.widgets.affection_meter import AffectionMeter
from serifu_game.widgets.debug_panel import DebugPanel, ReplyStats
from serifu_game.widgets.dialogue_log import DialogueLog, EntryView
from serifu_game.widgets.portrait import Portrait, looks
from serifu_game.widgets.say_input import SayInput

if TYPE_CHECKING:
    from serifu_game.app import SerifuGame
    from serifu_game.backends import Backend


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
        self.statuses: list[str] = []
        """Every status line shown, oldest first (tests read it)."""

    @property
    def game(self) -> SerifuGame:
        return cast("SerifuGame", self.app)

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        game = self.game
        assert game.state is not None and game.pack is not None
        card = game.pack.card()
        self.session = GameSession(game.state, card, load_pairs(game.pack))
        hair = looks(card.id)[0]
        yield Static(id="topbar", markup=False)
        with Horizontal(id="main"):
            with Vertical(id="side"):
                yield Portrait(card.id, mood=self.session.mood, id="portrait")
                yield Static(
                    plain((card.name, "bold"), "\n", (card.reading, "dim")),
                    id="name",
                    markup=False,
                )
                yield AffectionMeter(id="meter")
                yield Static(
                    plain(f"{card.grade}・{card.club}\n趣味：{'、'.join(card.hobbies)}"),
                    id="profile",
                    markup=False,
                )
            with Vertical(id="talk"):
                yield DialogueLog(color=_readable(hair), id="log")
                yield Vertical(id="suggestions")
                yield SayInput(
                    placeholder=self._talk_placeholder(),
                    max_length=game.settings.max_input_chars,
                    id="say",
                )
                yield Static(id="status", markup=False)
            yield DebugPanel(id="debug")
        yield Footer()

    def on_mount(self) -> None:
        game = self.game
        state = self.session.state
        self.card = self.session.card
        self.suggester = Suggester(self.session.pairs, self.card.protagonist)
        self.query_one(AffectionMeter).value = state.affection
        self.query_one("#debug").display = False
        log = self.query_one(DialogueLog)
        if state.log:
            log.reset(state.log)
        else:
            for entry in self.session.begin_scene():
                log.add(entry)
            self.query_one(AffectionMeter).value = state.affection
        self.backend_changed()
        self.refresh_top()
        self.refresh_suggestions()
        if state.scene_over:
            self.end_of_scene_prompt()
        self.query_one("#say", Input).focus()
        if game.score_replies:
            self.warm_up_scorer()

    def _talk_placeholder(self) -> str:
        """Input placeholders are drawn as plain text by Textual."""
        return f"{self.session.card.short_name}に話しかける…（1〜3で提案を選択）"

    def refresh_top(self) -> None:
        s = self.session
        day, _, total = s.day_label.partition(" / ")
        self.query_one("#topbar", Static).update(
            plain(
                (day, "bold"),
                f" / {total}   {s.place.icon} {s.place.name}    残りの会話 ",
                (s.turn_marks, "#ff7aa2"),
            )
        )

    def backend_changed(self) -> None:
        """Show which backend answers and apply the input limit (after start, load or a
        settings change)."""
        game = self.game
        assert game.choice is not None
        self.query_one("#say", SayInput).max_length = game.settings.max_input_chars
        self.set_status(game.choice.notice)
        if game.backend is not None and not _ready(game.backend):
            self.prepare_backend()

    def set_status(self, text: str) -> None:
        self.statuses.append(text)
        self.query_one("#status", Static).update(plain(text))

    # -- scene flow --------------------------------------------------------------
    def refresh_suggestions(self) -> None:
        state = self.session.state
        box = self.query_one("#suggestions", Vertical)
        box.remove_children()
        if state.scene_over:
            self._suggestions = []
            return
        self._suggestions = self.suggester.suggest(
            self.session.place.keywords,
            seed=self.session.suggestion_seed(),
            scene=state.script_scene,
            exclude=[u for u, _ in state.history],
        )
        box.mount_all(
            Button(plain(f"{i}. ", text), name=str(i), classes="suggestion", compact=True)
            for i, text in enumerate(self._suggestions, 1)
        )

    @on(Button.Pressed, ".suggestion")
    def _suggestion_pressed(self, event: Button.Pressed) -> None:
        index = int(event.button.name or "1") - 1
        self.say(self._suggestions[index])
        self.query_one("#say", Input).focus()

    @on(SayInput.TooLong)
    def _too_long(self, event: SayInput.TooLong) -> None:
        self.set_status(
            f"一度に話せるのは{event.limit}文字までです（設定 Ctrl+O で変えられます）。"
        )

    @on(Input.Submitted, "#say")
    def _submitted(self, event: Input.Submitted) -> None:
        state = self.session.state
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
        game = self.game
        if self.busy or game.backend is None:
            return
        limit = game.settings.max_input_chars
        if len(text) > limit:
            self.set_status(f"一度に話せるのは{limit}文字までです（{len(text)}文字）。")
            return
        try:
            player, reply = self.session.start_turn(text)
        except RuleError as exc:
            self.set_status(str(exc))
            return
        self.busy = True
        log = self.query_one(DialogueLog)
        log.add(player)
        view = log.add(reply)
        view.add_class("streaming")
        self._cancel = threading.Event()
        if _ready(game.backend):
            self.set_status(self._thinking())
        else:
            self.set_status(f"{game.backend.label} を読み込んでいます…（Escで中断）")
        self.respond(text, view)

    def _thinking(self) -> str:
        return f"{self.card.short_name}が考えています…（Escで中断）"

    @work(thread=True, exclusive=True, group="reply")
    def respond(self, text: str, view: EntryView) -> None:
        game = self.game
        state, backend = self.session.state, game.backend
        assert backend is not None
        cancel = self._cancel
        pieces = 0
        error = ""
        start = time.perf_counter()
        try:
            if not _ready(backend):  # the status line says "loading" only now
                backend.prepare()
                self.app.call_from_thread(self.set_status, self._thinking())
                start = time.perf_counter()
            history = list(state.history)
            for piece in backend.stream(text, history, cancel):
                pieces += 1
                self.app.call_from_thread(self._stream_piece, view, piece, pieces == 1)
        except Exception as exc:  # a failing model must not end the game
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        reply = view.entry.text
        score = None
        if game.score_replies and reply.strip() and not error and not cancel.is_set():
            try:
                from serifu_game.scoring import in_character

                score = in_character(self.card.id, reply)
            except Exception as exc:  # the score is a bonus; never fatal
                error = f"in-character score unavailable: {exc}"
        prompt = backend.debug_info(text, list(state.history))
        stats = ReplyStats(backend.label, prompt, pieces, seconds, score)
        self.app.call_from_thread(self.finish_reply, text, view, stats, cancel.is_set(), error)

    def _stream_piece(self, view: EntryView, piece: str, first: bool) -> None:
        if first:
            self.set_status(f"{self.card.short_name}が話しています…（Escで中断）")
        view.append(piece)
        self.query_one(DialogueLog).follow()

    def finish_reply(
        self, text: str, view: EntryView, stats: ReplyStats, cancelled: bool, error: str
    ) -> None:
        session = self.session
        self.busy = False
        view.remove_class("streaming")
        log = self.query_one(DialogueLog)
        if error and not view.entry.text.strip():
            log.add(session.fail_turn(view.entry, error))
            view.refresh_entry()
            self.set_status("エラー：" + error)
            return
        if cancelled:
            session.cancel_turn(view.entry)
            view.refresh_entry()
            self.set_status("中断しました。もう一度話しかけてみよう。")
            return
        result = session.finish_turn(text, view.entry, stats.in_character)
        view.refresh_entry()
        stats.affection = result.judgement.summary()
        self.stats = stats
        self.scores.append(stats.in_character)
        self.query_one(DebugPanel).show_stats(stats, self.scores)
        self.query_one(AffectionMeter).value = session.state.affection
        self.query_one(Portrait).mood = session.mood
        for entry in result.events:
            log.add(entry)
        self.set_status(result.judgement.summary())
        self.refresh_top()
        self.refresh_suggestions()
        if result.scene_over:
            self.end_of_scene_prompt()

    def end_of_scene_prompt(self) -> None:
        entry = self.session.end_of_day()
        if entry is not None:
            self.query_one(DialogueLog).add(entry)
        label = self.session.next_label
        self.query_one("#suggestions", Vertical).mount(
            Button(plain(f"▶ {label}（Enter）"), classes="next", compact=True)
        )
        self.query_one("#say", Input).placeholder = f"Enterで{label}"

    @on(Button.Pressed, ".next")
    def _next_pressed(self) -> None:
        self.next_day()

    def next_day(self) -> None:
        if self.session.state.last_day:
            from serifu_game.screens.ending import EndingScreen

            self.app.switch_screen(EndingScreen())
            return
        from serifu_game.screens.day import DayScreen

        def go(place_id: str | None) -> None:
            if place_id is None:
                return
            try:
                entries = self.session.next_day(place_id)
            except RuleError as exc:
                self.set_status(str(exc))
                return
            log = self.query_one(DialogueLog)
            log.reset([])
            for entry in entries:
                log.add(entry)
            self.query_one(AffectionMeter).value = self.session.state.affection
            self.query_one(Portrait).mood = self.session.mood
            self.query_one("#say", Input).placeholder = self._talk_placeholder()
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
        self.app.call_from_thread(self._backend_ready)

    def _backend_ready(self) -> None:
        choice = self.game.choice
        if not self.busy:  # a reply in progress keeps its "thinking" status
            self.set_status(choice.notice if choice else "")

    def _backend_failed(self, error: str) -> None:
        """The LLM could not load: say so and fall back to retrieval."""
        game = self.game
        game.settings = game.settings.model_copy(update={"backend": "retrieval"})
        game.rebuild_backend()
        self.query_one(DialogueLog).add(
            self.session.state.add(
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


def _ready(backend: Backend) -> bool:
    """Whether ``backend`` has loaded (backends without ``ready`` need no loading)."""
    return bool(getattr(backend, "ready", True))


def _readable(color: str) -> str:
    """A name colour light enough to read on the dark log (dark hair gets lightened)."""
    from textual.color import Color

    c = Color.parse(color)
    return c.lighten(0.35).hex if c.brightness < 0.45 else c.hex
