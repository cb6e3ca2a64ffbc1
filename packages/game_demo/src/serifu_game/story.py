"""The little story around the conversations: places, narration, events and endings."""

from __future__ import annotations

from dataclasses import dataclass

from serifu.characters import CharacterCard


@dataclass(frozen=True)
class Place:
    """Where a day's scene happens."""

    id: str
    name: str
    icon: str
    narration: str
    """Opening narration; ``{name}`` (her name), ``{club}`` and ``{food}`` are filled in."""
    keywords: str
    """What her opening line should be about (retrieval query over her lines)."""
    likes: tuple[str, ...] = ()
    """Hints in her hobbies, specialty or club that make this place a favourite of hers."""


PLACES: tuple[Place, ...] = (
    Place(
        "classroom",
        "教室",
        "▤",
        "朝の教室。窓から差し込む光の中、{name}が席に着いている。",
        "おはよう 教室 席 授業",
    ),
    Place(
        "rooftop",
        "屋上",
        "☁",
        "昼休みの屋上。風が気持ちいい。フェンスのそばに{name}の姿があった。",
        "屋上 お昼 弁当 空 風",
        ("天体", "星", "昼寝"),
    ),
    Place(
        "club",
        "部活",
        "♪",
        "放課後、{club}の活動場所をのぞくと、{name}が一生懸命に打ち込んでいた。",
        "部活 練習 放課後 頑張",
        ("部",),
    ),
    Place(
        "shops",
        "商店街",
        "☕",
        "夕方の商店街。{food}の香りにつられて歩いていると、{name}とばったり会った。",
        "商店街 買い物 おいしい 食べ",
        ("カラオケ", "お菓子", "買い物", "たこ焼き", "お笑い"),
    ),
    Place(
        "library",
        "図書室",
        "✎",
        "静かな図書室。窓際の席で、{name}が本を広げている。",
        "図書室 本 勉強 静か",
        ("読書", "本", "チェス", "お絵かき"),
    ),
    Place(
        "park",
        "公園",
        "✿",
        "休日の公園。ベンチに座る{name}が、こちらに気づいて顔を上げた。",
        "公園 休み 散歩 天気",
        ("ランニング", "散歩", "押し花", "天体", "花"),
    ),
)


def place(place_id: str) -> Place:
    """The place with this id (the classroom for unknown ids, e.g. from an edited save)."""
    return next((p for p in PLACES if p.id == place_id), PLACES[0])


def opening_narration(p: Place, card: CharacterCard) -> str:
    return p.narration.format(name=card.short_name, club=card.club, food=card.favorite_food)


def place_bonus(p: Place, card: CharacterCard) -> int:
    """Affection bonus for meeting her at a place she likes (0 elsewhere)."""
    about_her = " ".join([*card.hobbies, card.specialty, card.club])
    return 3 if any(hint in about_her for hint in p.likes) else 0


FIRST_DAY_NARRATION = "春。転校初日の朝、案内された席の隣にいたのは――{name}だった。"

DAY_END = "チャイムが鳴る。今日はここまでのようだ。"


@dataclass(frozen=True)
class Event:
    """A moment that happens once when affection first reaches ``threshold``."""

    id: str
    threshold: int
    text: str


EVENTS: tuple[Event, ...] = (
    Event("smile", 35, "{name}が、ふっと柔らかく笑った。少し打ち解けられた気がする。"),
    Event(
        "contact",
        60,
        "別れ際、{name}が連絡先を教えてくれた。その名前を、つい何度も見返してしまう。",
    ),
    Event("blush", 80, "目が合うと、{name}の頬がほんのり赤く染まった。"),
)


def new_events(affection: int, seen: list[str]) -> list[Event]:
    """Events whose threshold was reached and that were not seen yet."""
    return [e for e in EVENTS if affection >= e.threshold and e.id not in seen]


def event_text(e: Event, card: CharacterCard) -> str:
    return e.text.format(name=card.short_name)


@dataclass(frozen=True)
class Ending:
    """How the story ends for a given affection."""

    id: str
    title: str
    text: str


def ending(affection: int, card: CharacterCard) -> Ending:
    """The ending for the final affection."""
    n = card.short_name
    if affection >= 80:
        return Ending(
            "true",
            "TRUE END ― 桜の下で",
            f"卒業式の日。桜の木の下で、{n}は真っ赤な顔でこちらを見つめた。\n「……ずっと、言いたかったことがあるの」\n二人の物語は、ここから始まる。",
        )
    if affection >= 50:
        return Ending(
            "good",
            "GOOD END ― いつもの帰り道",
            f"あの日から、{n}と並んで帰るのが当たり前になった。\nこの距離がもう少しだけ縮まる日も、きっと遠くない。",
        )
    return Ending(
        "normal",
        "NORMAL END ― クラスメイト",
        f"{n}とは、今もただのクラスメイトだ。\n廊下ですれ違えば挨拶をする。……それだけの、春だった。",
    )
