"""The game's rules as plain Python (no Textual): scenes, turns, affection, events, days.

A :class:`GameSession` wraps the saved :class:`~serifu_game.state.GameState` with her card
and dialogue pairs. Screens call its methods and render the log entries they return;
``tests/game/test_session.py`` plays whole games through it without a UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from serifu.characters import CharacterCard
from serifu_game import story
from serifu_game.affection import Judgement, judge, mood
from serifu_game.backends.retrieval import RetrievalBackend
from serifu_game.pairs import Pair
from serifu_game.state import DAYS, TURNS_PER_SCENE, GameState, LogEntry

CANCELLED = "……"
"""What ends a reply the player cancelled (and stands for a reply that failed)."""


class RuleError(ValueError):
    """A move the rules do not allow now (e.g. talking after the scene is over)."""


@dataclass
class TurnResult:
    """What one finished exchange did."""

    judgement: Judgement
    events: list[LogEntry] = field(default_factory=list)
    scene_over: bool = False


class GameSession:
    """One playthrough: the state plus the rules that move it."""

    def __init__(self, state: GameState, card: CharacterCard, pairs: Sequence[Pair]) -> None:
        self.state = state
        self.card = card
        self.pairs = list(pairs)
        self._openers = RetrievalBackend(self.pairs, seed=state.seed) if self.pairs else None

    # -- what screens show -------------------------------------------------------
    @property
    def place(self) -> story.Place:
        return story.place(self.state.place)

    @property
    def mood(self) -> str:
        return mood(self.state.affection)

    @property
    def turn_marks(self) -> str:
        """``◆◆◇``: lines left today (filled) and spent (hollow)."""
        left = max(0, min(TURNS_PER_SCENE, self.state.turns_left))
        return "◆" * left + "◇" * (TURNS_PER_SCENE - left)

    @property
    def day_label(self) -> str:
        return f"{self.state.day}日目 / 全{DAYS}日"

    @property
    def next_label(self) -> str:
        """What Enter does once the scene is over."""
        return "エンディングへ" if self.state.last_day else "次の日へ"

    def suggestion_seed(self) -> int:
        s = self.state
        return s.seed * 1000 + s.day * 10 + s.turns_left

    def ending(self) -> story.Ending:
        return story.ending(self.state.affection, self.card)

    # -- a day's scene -----------------------------------------------------------
    def begin_scene(self) -> list[LogEntry]:
        """Narration, a place bonus (after day 1) and her opening line (a real script line)."""
        state, card = self.state, self.card
        place = self.place
        if state.day == 1:
            narration = story.FIRST_DAY_NARRATION.format(name=card.name)
            opener = self.pairs[0] if self.pairs else None
        else:
            narration = story.opening_narration(place, card)
            opener = self._openers.best(place.keywords).pair if self._openers else None
        state.script_scene = opener.scene if opener else ""
        entries = [state.add("narration", narration)]
        bonus = story.place_bonus(place, card) if state.day > 1 else 0
        if bonus:
            state.change_affection(bonus)
            text = f"{card.short_name}はこの場所が好きみたいだ。（♥ +{bonus}）"
            entries.append(state.add("event", text))
        entries.append(state.add("heroine", opener.reply if opener else CANCELLED, card.short_name))
        return entries

    def start_turn(self, text: str) -> tuple[LogEntry, LogEntry]:
        """The player says ``text``: their log line and her (empty, to be streamed) reply."""
        if self.state.scene_over:
            raise RuleError("今日の会話はもう終わりです。")
        if not text.strip():
            raise RuleError("何か話しかけてください。")
        player = self.state.add("player", text)
        return player, self.state.add("heroine", "", self.card.short_name)

    def finish_turn(
        self, text: str, reply: LogEntry, in_character: float | None = None
    ) -> TurnResult:
        """Her reply is complete: judge the exchange, move affection, fire events, spend a turn."""
        state = self.state
        reply.text = reply.text.strip()
        state.history.append((text, reply.text))
        del state.history[:-TURNS_PER_SCENE]
        verdict = judge(text, reply.text, self.card, in_character)
        state.change_affection(verdict.delta)
        events = []
        for event in story.new_events(state.affection, state.events):
            state.events.append(event.id)
            events.append(state.add("event", story.event_text(event, self.card)))
        state.turns_left = max(0, state.turns_left - 1)
        return TurnResult(verdict, events, state.scene_over)

    def cancel_turn(self, reply: LogEntry) -> None:
        """The player cancelled her reply: keep what came, mark it cut, spend no turn."""
        reply.text = reply.text.strip() + CANCELLED

    def fail_turn(self, reply: LogEntry, error: str) -> LogEntry:
        """Her reply could not be made: say why in the log; no turn is spent."""
        reply.text = reply.text.strip() or CANCELLED
        return self.state.add(
            "system",
            f"返事を作れませんでした（{error}）。設定（Ctrl+O）でバックエンドを変えられます。",
        )

    def end_of_day(self) -> LogEntry | None:
        """The day-end narration, once, when the scene is over."""
        if not self.state.scene_over:
            return None
        if self.state.log and self.state.log[-1].text == story.DAY_END:
            return None
        return self.state.add("narration", story.DAY_END)

    def next_day(self, place_id: str) -> list[LogEntry]:
        """Move to the next day at ``place_id`` and open its scene."""
        state = self.state
        if not state.scene_over:
            raise RuleError("まだ今日の会話が残っています。")
        if state.last_day:
            raise RuleError("最終日です。エンディングへ進んでください。")
        if place_id not in {p.id for p in story.PLACES}:
            raise RuleError(f"知らない場所です：{place_id}")
        state.day += 1
        state.place = place_id
        state.turns_left = TURNS_PER_SCENE
        state.history.clear()
        state.log.clear()
        return self.begin_scene()
