"""How a conversation moves her affection: transparent rules plus the classifier's signal.

Each exchange is judged on the player's line (kind or rude words, her interests, showing
interest), on her reply (warm or cold words) and on how in-character the reply is (the
evaluation classifier's probability for her). The reasons are shown to the player.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from serifu.characters import CharacterCard

KIND_WORDS = (
    "ありがとう",
    "すごい",
    "凄い",
    "かわいい",
    "可愛い",
    "きれい",
    "綺麗",
    "好き",
    "楽しい",
    "一緒",
    "頑張",
    "がんば",
    "似合",
    "優しい",
    "嬉しい",
    "おいしい",
    "美味しい",
    "さすが",
    "尊敬",
    "助かる",
    "素敵",
)
RUDE_WORDS = (
    "うるさい",
    "嫌い",
    "きらい",
    "バカ",
    "ばか",
    "馬鹿",
    "黙れ",
    "うざい",
    "つまらない",
    "ブス",
    "最低",
    "興味ない",
    "どうでもいい",
    "帰れ",
    "邪魔",
)
WARM_REPLY = (
    "嬉しい",
    "うれしい",
    "ありがと",
    "楽しい",
    "好き",
    "えへへ",
    "うふふ",
    "よかった",
    "一緒",
    "また",
    "笑",
)
COLD_REPLY = ("嫌", "最低", "知らない", "怒", "もういい", "うるさい", "放っといて")
QUESTION = re.compile(r"[？?]|何|どう|いつ|どこ|誰|好き")


@dataclass(frozen=True)
class Judgement:
    """The change in affection for one exchange, with its reasons (Japanese, short)."""

    delta: int
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        sign = "+" if self.delta > 0 else ""
        return f"♥ {sign}{self.delta}" + (f"（{'、'.join(self.reasons)}）" if self.reasons else "")


def interests(card: CharacterCard) -> list[str]:
    """Words that light her up: hobbies, favourite food, club, specialty (and their stems)."""
    words = [*card.hobbies, card.favorite_food, card.club, card.specialty]
    stems = []
    for w in words:
        stems.append(w)
        for part in re.split(r"の|こと|を|部$|作り$", w):
            if len(part) >= 2:
                stems.append(part)
    return sorted(set(stems), key=len, reverse=True)


def judge(
    player: str, reply: str, card: CharacterCard, in_character: float | None = None
) -> Judgement:
    """Affection change for the player's line and her reply."""
    delta, reasons = 0, []
    text = player.strip()
    if len(text) <= 1:
        delta -= 1
        reasons.append("そっけない")
    kind = sum(1 for w in KIND_WORDS if w in text)
    if kind:
        delta += min(4, 2 * kind)
        reasons.append("優しい言葉")
    rude = sum(1 for w in RUDE_WORDS if w in text)
    if rude:
        delta -= min(10, 5 * rude)
        reasons.append("失礼な言葉")
    topic = next((w for w in interests(card) if w in text), None)
    if topic:
        delta += 3
        reasons.append(f"「{topic}」の話")
    if card.disliked_food in text:
        delta -= 1
        reasons.append("苦手な話題")
    if QUESTION.search(text) and not rude:
        delta += 1
        reasons.append("興味を示した")
    if any(w in reply for w in WARM_REPLY):
        delta += 1
        reasons.append("嬉しそう")
    if any(w in reply for w in COLD_REPLY):
        delta -= 1
        reasons.append("ご機嫌ななめ")
    if in_character is not None and in_character >= 0.5:
        delta += 1
        reasons.append("彼女らしい返事")
    return Judgement(max(-10, min(8, delta)), reasons)


def mood(affection: int) -> str:
    """Her mood word for the portrait."""
    if affection >= 80:
        return "ときめき"
    if affection >= 55:
        return "ご機嫌"
    if affection >= 30:
        return "ふつう"
    if affection >= 12:
        return "よそよそしい"
    return "不機嫌"
