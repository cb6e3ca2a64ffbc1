"""The game's rules without any UI: GameSession over the real sample cast."""

from __future__ import annotations

import pytest

from serifu import plugins
from serifu.characters import CharacterPack
from serifu_game import story
from serifu_game.pairs import load_pairs
from serifu_game.session import CANCELLED, GameSession, RuleError, TurnResult
from serifu_game.state import DAYS, START_AFFECTION, TURNS_PER_SCENE, GameState


@pytest.fixture(scope="module")
def kaede() -> CharacterPack:
    return plugins.get_character("kaede")


def new_session(pack: CharacterPack, affection: int = START_AFFECTION) -> GameSession:
    state = GameState(character=pack.id, affection=affection)
    return GameSession(state, pack.card(), load_pairs(pack))


def say(session: GameSession, text: str, reply: str, score: float | None = None) -> TurnResult:
    _, entry = session.start_turn(text)
    entry.text = reply
    return session.finish_turn(text, entry, score)


def test_day_one_opens_with_narration_and_her_first_script_line(kaede: CharacterPack) -> None:
    session = new_session(kaede)
    entries = session.begin_scene()
    assert [e.kind for e in entries] == ["narration", "heroine"]
    assert session.card.name in entries[0].text
    first = load_pairs(kaede)[0]
    assert entries[1].text == first.reply and entries[1].speaker == "楓"
    assert session.state.script_scene == first.scene
    assert session.state.affection == START_AFFECTION  # no place bonus on day 1
    assert session.turn_marks == "◆◆◆" and session.day_label == f"1日目 / 全{DAYS}日"


def test_a_turn_judges_the_exchange_and_spends_one_line(kaede: CharacterPack) -> None:
    session = new_session(kaede)
    session.begin_scene()
    result = say(session, "カツ丼、一緒に食べに行こう？", " べ、別にいいわよ！ ", 0.9)
    state = session.state
    assert result.judgement.delta >= 5
    assert state.affection == START_AFFECTION + result.judgement.delta
    assert state.turns_left == TURNS_PER_SCENE - 1 and session.turn_marks == "◆◆◇"
    assert state.history == [("カツ丼、一緒に食べに行こう？", "べ、別にいいわよ！")]
    assert [e.kind for e in state.log[-2:]] == ["player", "heroine"]
    rude = say(session, "うるさいな、バカ", "なんですって！？")
    assert rude.judgement.delta < 0
    assert state.affection < START_AFFECTION + result.judgement.delta


def test_affection_stays_in_range_and_events_fire_once(kaede: CharacterPack) -> None:
    session = new_session(kaede, affection=98)
    session.begin_scene()
    result = say(session, "カツ丼、一緒に食べに行こう？ありがとう", "嬉しい！", 0.9)
    assert session.state.affection == 100
    assert [e.text for e in result.events] == [
        story.event_text(e, session.card) for e in story.EVENTS
    ]
    assert session.state.events == [e.id for e in story.EVENTS]
    again = say(session, "ありがとう", "嬉しい！")
    assert again.events == []
    low = new_session(kaede, affection=2)
    low.begin_scene()
    say(low, "うるさい、バカ、黙れ", "最低！")
    assert low.state.affection == 0


def test_cancel_and_failure_spend_no_turn(kaede: CharacterPack) -> None:
    session = new_session(kaede)
    session.begin_scene()
    _, entry = session.start_turn("部活どう")
    entry.text = "ふん、"
    session.cancel_turn(entry)
    assert entry.text == "ふん、" + CANCELLED
    _, failed = session.start_turn("部活どう")
    note = session.fail_turn(failed, "RuntimeError: out of memory")
    assert failed.text == CANCELLED and note.kind == "system" and "out of memory" in note.text
    assert session.state.turns_left == TURNS_PER_SCENE and session.state.history == []


def test_the_day_flow_from_scene_to_scene_to_the_ending(kaede: CharacterPack) -> None:
    session = new_session(kaede)
    session.begin_scene()
    with pytest.raises(RuleError):
        session.next_day("club")  # lines are left today
    for _ in range(TURNS_PER_SCENE):
        assert session.end_of_day() is None
        say(session, "走るの速いね", "当然じゃない！")
    with pytest.raises(RuleError, match="もう終わり"):
        session.start_turn("もう一言")
    end = session.end_of_day()
    assert end is not None and end.text == story.DAY_END and session.end_of_day() is None
    assert session.next_label == "次の日へ"
    before = session.state.affection
    with pytest.raises(RuleError, match="知らない場所"):
        session.next_day("moon")
    entries = session.next_day("club")  # her club: a place she likes
    state = session.state
    assert (state.day, state.place, state.turns_left, state.history) == (2, "club", 3, [])
    assert state.log == entries and [e.kind for e in entries] == ["narration", "event", "heroine"]
    assert state.affection == before + story.place_bonus(story.place("club"), session.card)
    assert entries[-1].text in {p.reply for p in session.pairs}

    state.day, state.turns_left, state.affection = DAYS, 0, 85
    assert session.next_label == "エンディングへ"
    with pytest.raises(RuleError, match="最終日"):
        session.next_day("park")
    assert session.ending().id == "true"


def test_empty_lines_are_refused(kaede: CharacterPack) -> None:
    session = new_session(kaede)
    with pytest.raises(RuleError):
        session.start_turn("   ")
    assert session.state.log == []
