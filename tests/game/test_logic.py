"""The game's rules without the UI: retrieval, affection, backend choice, saves, settings."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from serifu import plugins
from serifu.characters import CharacterPack
from serifu_game import story
from serifu_game.affection import judge
from serifu_game.backends import choose_backend, default_model
from serifu_game.backends.retrieval import RetrievalBackend
from serifu_game.pairs import load_pairs
from serifu_game.save import SCHEMA_VERSION, SaveError, list_slots, read_slot, write_slot
from serifu_game.settings import GameSettings, load_settings, save_settings
from serifu_game.state import GameState
from serifu_game.suggestions import Suggester
from serifu_game.textsplit import word_pieces
from serifu_game.widgets.portrait import pixel_rows


@pytest.fixture(scope="module")
def kaede() -> CharacterPack:
    return plugins.get_character("kaede")


def test_retrieval_answers_with_her_most_fitting_real_line(kaede: CharacterPack) -> None:
    pairs = load_pairs(kaede)
    replies = {p.reply for p in pairs}
    backend = RetrievalBackend(pairs, seed=0)
    answer = "".join(backend.stream("カツ丼好き？", [], threading.Event()))
    assert answer in replies
    assert "カツ丼" in answer  # her favourite food, as her script says it
    assert backend.last_match is not None and not backend.last_match.weak


def test_retrieval_is_seeded_does_not_repeat_and_falls_back_to_scene_openers(
    kaede: CharacterPack,
) -> None:
    pairs = load_pairs(kaede)
    a, b = RetrievalBackend(pairs, seed=3), RetrievalBackend(pairs, seed=3)
    assert [a.reply("こんにちは") for _ in range(3)] == [b.reply("こんにちは") for _ in range(3)]
    backend = RetrievalBackend(pairs, seed=0)
    first, second = backend.reply("こんにちは"), backend.reply("こんにちは")
    assert first != second
    assert backend.last_match is not None and backend.last_match.weak
    openers = {p.reply for p in pairs if p is next(q for q in pairs if q.scene == p.scene)}
    assert {first, second} <= openers


def test_cancel_stops_the_stream(kaede: CharacterPack) -> None:
    cancel = threading.Event()
    backend = RetrievalBackend(load_pairs(kaede))
    pieces = []
    for piece in backend.stream("陸上部の練習はどう？", [], cancel):
        pieces.append(piece)
        cancel.set()
    assert len(pieces) == 1


def test_word_pieces_rejoin_to_the_text() -> None:
    text = "ふん、負けないんだから！100mなら12秒8よ"
    pieces = word_pieces(text)
    assert "".join(pieces) == text
    assert pieces == ["ふん", "、", "負けないんだから", "！", "100m", "なら", "12", "秒", "8", "よ"]


def test_affection_rewards_kindness_and_her_interests_and_punishes_rudeness(
    kaede: CharacterPack,
) -> None:
    card = kaede.card()
    kind = judge("カツ丼、一緒に食べに行こう？", "べ、別にいいわよ！", card, 0.9)
    rude = judge("うるさいな、バカ", "なんですって！？", card, 0.9)
    bland = judge("そうか", "そうよ", card, None)
    assert kind.delta >= 5 and any("カツ丼" in r for r in kind.reasons)
    assert rude.delta <= -5 and "失礼な言葉" in rude.reasons
    assert rude.delta < bland.delta < kind.delta
    assert "彼女らしい返事" in kind.reasons and "彼女らしい返事" not in bland.reasons


def test_default_backend_is_llm_only_with_a_shipped_adapter(
    kaede: CharacterPack, tmp_path: Path
) -> None:
    plain = kaede.model_copy(update={"adapters": {}})
    assert choose_backend(plain).kind == "retrieval"
    assert (
        "retrieval" not in choose_backend(plain).notice
        and "台本検索" in choose_backend(plain).notice
    )
    default = default_model()  # Serifu's setting, not a model id the game knows
    tuned = kaede.model_copy(update={"adapters": {default: tmp_path}})
    choice = choose_backend(tuned)
    assert (choice.kind, choice.model, choice.adapter) == ("llm", default, str(tmp_path))
    assert choose_backend(tuned, backend="retrieval").kind == "retrieval"
    explicit = choose_backend(plain, backend="llm", model="tiny-gemma")
    assert (explicit.kind, explicit.model, explicit.adapter) == ("llm", "tiny-gemma", None)


def test_save_round_trip_and_bad_saves(tmp_path: Path) -> None:
    state = GameState(character="kaede", day=3, affection=57)
    state.add("heroine", "ふん、負けないから！", "楓")
    state.history.append(("勝負しよう", "受けて立つわよ！"))
    path = write_slot(2, state, tmp_path)
    loaded, saved_at = read_slot(2, tmp_path)
    assert loaded == state and saved_at
    assert json.loads(path.read_text(encoding="utf-8"))["schema_version"] == SCHEMA_VERSION
    assert not list(tmp_path.glob("*.tmp"))

    (tmp_path / "slot1.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(SaveError, match="壊れています"):
        read_slot(1, tmp_path)
    old = {"schema_version": 0, "state": {}}
    (tmp_path / "slot3.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(SaveError, match="別の版"):
        read_slot(3, tmp_path)
    infos = list_slots(tmp_path)
    assert [bool(i.problem) for i in infos] == [True, False, True]
    assert infos[1].state == state


def test_settings_survive_and_a_bad_file_falls_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(GameSettings(backend="llm", model="tiny-gemma"), path)
    assert load_settings(path) == (GameSettings(backend="llm", model="tiny-gemma"), None)
    path.write_text('{"backend": "telepathy"}', encoding="utf-8")
    settings, problem = load_settings(path)
    assert settings == GameSettings() and problem and str(path) in problem


def test_endings_and_events_follow_affection(kaede: CharacterPack) -> None:
    card = kaede.card()
    assert [story.ending(a, card).id for a in (10, 55, 90)] == ["normal", "good", "true"]
    assert [e.id for e in story.new_events(65, ["smile"])] == ["contact"]
    assert story.place_bonus(story.place("club"), card) > 0
    assert story.place_bonus(story.place("library"), card) == 0


def test_suggestions_are_her_scripts_protagonist_lines(kaede: CharacterPack) -> None:
    pairs = load_pairs(kaede)
    suggester = Suggester(pairs)
    scene = pairs[0].scene
    lines = suggester.suggest("教室", seed=1, scene=scene)
    assert len(lines) == 3 and len(set(lines)) == 3
    assert set(lines) <= {p.query for p in pairs if p.scene == scene}
    assert lines == suggester.suggest("教室", seed=1, scene=scene)


def test_portrait_rows_are_square_for_every_style_and_mood() -> None:
    for style in ("long", "short", "twin"):
        for mood in ("不機嫌", "ふつう", "ご機嫌", "ときめき"):
            rows = pixel_rows(style, mood)
            assert len(rows) == 24 and {len(r) for r in rows} == {24}
    assert pixel_rows("long", "ときめき") != pixel_rows("long", "ふつう")


def test_play_rejects_unknown_heroines_and_backends_with_exit_code_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from serifu.cli import main

    assert main(["play", "--character", "nobody"]) == 2
    assert "unknown character 'nobody'" in capsys.readouterr().err
    assert main(["play", "--backend", "telepathy"]) == 2
    assert "unknown backend" in capsys.readouterr().err
