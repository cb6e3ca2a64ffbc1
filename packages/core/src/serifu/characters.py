"""Character cards (profile TOML) and character packs (card + scripts), as plugins register them.

A card holds a name plus whatever is known about her. The sample cast's school-profile
fields (grade, club, blood type, …) are optional facts; cards imported from Character Card
V2/V3 files (``serifu.cards``) add the front-end fields (description, scenario, greetings,
lorebook) and keep the rest of the original card in ``interop`` for a faithful export.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from serifu.errors import SerifuError
from serifu.kinds import ID_PATTERN

MIN_SAMPLE_QUESTIONS = 11
"""The sample cast's documented minimum number of profile questions (cast/FORMAT.md)."""

FACT_LABELS: dict[str, str] = {
    "reading": "読み",
    "age": "年齢",
    "grade": "学年",
    "birthday": "誕生日",
    "zodiac": "星座",
    "blood_type": "血液型",
    "height_cm": "身長",
    "hobbies": "趣味",
    "specialty": "特技",
    "favorite_food": "好きな食べ物",
    "disliked_food": "苦手な食べ物",
    "club": "部活",
    "friends": "友達",
    "first_person": "一人称",
}
"""The optional profile facts, in display order, with their Japanese labels."""

MAX_LORE_FACT_CHARS = 80
"""A lorebook entry with a name and a one-line content up to this long counts as a fact."""


class ProfileQuestion(BaseModel):
    """A question about the character and how to recognise a right answer."""

    model_config = ConfigDict(extra="forbid")
    q: str = Field(description="The question, as the protagonist would ask it.")
    answers: list[list[str]] = Field(
        description="Keyword groups: a reply is right when every group has one of its variants in it."
    )


class CharacterCard(BaseModel):
    """A heroine's profile: what the system prompt states and profile-QA checks."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Stable id (lowercase ascii).")
    name: str = Field(description="Full name.")
    short_name: str = Field(
        default="", description="Speaker label used in her scripts (default: name)."
    )
    # Optional profile facts (the sample cast has them all).
    reading: str = Field(default="", description="Reading of the name in kana.")
    age: int | None = Field(default=None, description="Age in years.")
    grade: str = Field(default="", description="School year.")
    birthday: str = Field(default="", description="Birthday, e.g. 8月3日.")
    zodiac: str = Field(default="", description="Zodiac sign.")
    blood_type: str = Field(default="", description="Blood type.")
    height_cm: int | None = Field(default=None, description="Height in cm.")
    hobbies: list[str] = Field(default_factory=list, description="Hobbies.")
    specialty: str = Field(default="", description="What she is good at.")
    favorite_food: str = Field(default="", description="Favourite food.")
    disliked_food: str = Field(default="", description="Food she dislikes.")
    club: str = Field(default="", description="Club.")
    friends: list[str] = Field(default_factory=list, description="Friends.")
    first_person: str = Field(default="", description="First-person pronoun.")
    speech_type: str = Field(default="", description="Speech style in a few English words.")
    personality: str = Field(default="", description="Personality, a few sentences.")
    speech_notes: str = Field(default="", description="How she talks.")
    protagonist: str = Field(default="主人公", description="Speaker label of the player character.")
    questions: list[ProfileQuestion] = Field(
        default_factory=list,
        description="Profile questions; generated from her facts when none are given.",
    )
    # Character Card V2/V3 fields (cards imported from other front ends).
    description: str = Field(default="", description="Free description (CCv2 `description`).")
    scenario: str = Field(default="", description="The situation (CCv2 `scenario`).")
    first_mes: str = Field(default="", description="Her greeting (CCv2 `first_mes`).")
    alternate_greetings: list[str] = Field(default_factory=list, description="Other greetings.")
    mes_example: str = Field(default="", description="Example dialogue (CCv2 `mes_example`).")
    system_prompt: str = Field(
        default="", description="Replaces the prompt's first line; {{original}} keeps it."
    )
    post_history_instructions: str = Field(default="", description="CCv2 field, kept as is.")
    creator_notes: str = Field(default="", description="Notes for users (not in the prompt).")
    tags: list[str] = Field(default_factory=list, description="Tags.")
    creator: str = Field(default="", description="Who made the card.")
    character_version: str = Field(default="", description="The card's own version.")
    interop: dict[str, Any] = Field(
        default_factory=dict,
        description="Kept from an imported card for export: character_book, extensions, other "
        "V3 fields (JSON; in card.toml as the string `interop_json`).",
    )
    _generated_questions: bool = PrivateAttr(default=False)

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-'")
        return v

    @model_validator(mode="before")
    @classmethod
    def _interop_json(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "interop_json" in raw:
            raw = dict(raw)
            text = raw.pop("interop_json")
            try:
                raw["interop"] = json.loads(text) if isinstance(text, str) else text
            except json.JSONDecodeError as exc:
                raise ValueError(f"interop_json is not valid JSON ({exc})") from None
        return raw

    @model_validator(mode="after")
    def _defaults(self) -> CharacterCard:
        if not self.short_name:
            self.short_name = self.name
        if not self.questions:
            self.questions = generated_questions(self)
            self._generated_questions = True
        return self

    @property
    def questions_generated(self) -> bool:
        """True when the card gave no [[questions]] and they were made from her facts."""
        return self._generated_questions

    def fact_value(self, key: str) -> str:
        """One profile fact as display text ('' when the card does not have it)."""
        value = getattr(self, key)
        if value is None or value == "" or value == []:
            return ""
        if key == "age":
            return f"{value}歳"
        if key == "height_cm":
            return f"{value}cm"
        if key == "blood_type":
            return f"{str(value).removesuffix('型')}型"
        if isinstance(value, list):
            return "、".join(value)
        return str(value)

    def lore_facts(self) -> list[tuple[str, str]]:
        """(label, value) of the lorebook's short named entries (imported cards)."""
        book = self.interop.get("character_book")
        out: list[tuple[str, str]] = []
        for entry in (book or {}).get("entries", []) if isinstance(book, dict) else []:
            if not isinstance(entry, dict) or entry.get("enabled") is False:
                continue
            label = str(entry.get("name") or entry.get("comment") or "").strip()
            content = str(entry.get("content") or "").strip()
            if label and content and "\n" not in content and len(content) <= MAX_LORE_FACT_CHARS:
                out.append((label, content))
        return out

    def facts(self) -> list[tuple[str, str, str]]:
        """(key, Japanese label, value) of every fact the card has, profile fields first."""
        out = [(k, label, self.fact_value(k)) for k, label in FACT_LABELS.items()]
        out = [f for f in out if f[2]]
        out += [(f"lore:{label}", label, value) for label, value in self.lore_facts()]
        return out

    def macros(self, text: str) -> str:
        """Replace the card macros ``{{char}}`` and ``{{user}}`` (and <BOT>/<USER>)."""
        for pattern, value in (
            ("{{char}}", self.short_name),
            ("<BOT>", self.short_name),
            ("{{user}}", self.protagonist),
            ("<USER>", self.protagonist),
        ):
            text = text.replace(pattern, value)
        return text


class CharacterPack(BaseModel):
    """What ``register_characters`` registers: a card plus the scripts of her lines."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    id: str = Field(description="Character id (same as the card's).")
    card_path: Path = Field(description="Path to card.toml.")
    scripts: list[Path] = Field(description="Script files her lines are read from.")
    source: str = Field(default="script", description="Data-source id that reads the scripts.")
    adapters: dict[str, Path] = Field(
        default_factory=dict, description="Shipped LoRA adapters by base-model id."
    )
    min_questions: int = Field(
        default=0, description="Fewest [[questions]] the card must give (sample cast: 11)."
    )

    @property
    def description(self) -> str:
        return f"character pack {self.id}"

    def card(self) -> CharacterCard:
        card = load_card(self.card_path)
        if card.id != self.id:
            raise SerifuError(
                f"the card's id {card.id!r} differs from the pack's id {self.id!r} "
                "(the folder name); make them the same",
                path=self.card_path,
            )
        given = 0 if card.questions_generated else len(card.questions)
        if given < self.min_questions:
            raise SerifuError(
                f"the card has {given} [[questions]]; this pack needs at least "
                f"{self.min_questions} (see cast/FORMAT.md)",
                path=self.card_path,
            )
        return card


def load_card(path: Path) -> CharacterCard:
    """Read and validate a card; errors name the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SerifuError("character card not found", path=path) from None
    except UnicodeDecodeError:
        raise SerifuError("not UTF-8 text", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise SerifuError(f"not valid TOML ({exc})", path=path) from None
    try:
        return CharacterCard.model_validate(raw)
    except ValidationError as exc:
        from serifu.config import format_validation_error

        raise SerifuError(format_validation_error(exc), path=path) from None


def generated_questions(card: CharacterCard) -> list[ProfileQuestion]:
    """Profile questions made from whatever short facts the card has."""
    out: list[ProfileQuestion] = []
    for key, label, value in card.facts():
        if key in ("reading", "first_person") or len(value) > 40:
            continue
        raw = getattr(card, key, None) if not key.startswith("lore:") else value
        if isinstance(raw, list):
            variants = [str(v) for v in raw if str(v)]
        elif isinstance(raw, int):
            variants = [str(raw), str(raw).translate(_FULLWIDTH)]
        else:
            variants = [str(raw).removesuffix("型") if key == "blood_type" else str(raw)]
        out.append(ProfileQuestion(q=f"{label}を教えて。", answers=[sorted(set(variants))]))
    return out


_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def system_prompt(card: CharacterCard) -> str:
    """The report's profile system prompt, rendered from the facts the card has.

    For a card with every school-profile fact this is exactly the report's prompt.
    """
    v = card.fact_value
    header = "あなたは以下の設定に従ってロールプレイをしてください。"
    if card.system_prompt:
        header = card.macros(card.system_prompt.replace("{{original}}", header))
    lines = [header]
    lines.append(
        f"名前は{card.name}（{card.reading}）です。" if card.reading else f"名前は{card.name}です。"
    )
    lines.append(_sentence(["年齢は" + v("age") if v("age") else "", v("grade")]))
    lines.append(
        _sentence(
            [
                "誕生日は" + v("birthday") if v("birthday") else "",
                v("zodiac"),
                "血液型は" + v("blood_type") if v("blood_type") else "",
                "身長は" + v("height_cm") if v("height_cm") else "",
            ]
        )
    )
    lines.append(_each([("趣味は", v("hobbies")), ("特技は", v("specialty"))]))
    lines.append(
        _sentence(
            [
                "好きな食べ物は" + v("favorite_food") if v("favorite_food") else "",
                "苦手な食べ物は" + v("disliked_food") if v("disliked_food") else "",
            ]
        )
    )
    lines.append(_each([("部活は", v("club")), ("友達は", v("friends"))]))
    person = f"一人称は「{card.first_person}」です。" if card.first_person else ""
    lines.append(person + (f"性格：{card.personality}" if card.personality else ""))
    if card.speech_notes:
        lines.append(f"話し方：{card.speech_notes}")
    if card.description:
        lines.append(card.macros(card.description))
    if card.scenario:
        lines.append(f"状況：{card.macros(card.scenario)}")
    lines += [f"{label}：{value}" for label, value in card.lore_facts()]
    lines.append("この設定に従って、以下の入力に対して適切な応答を返してください：")
    return "\n".join(line for line in lines if line)


def _sentence(parts: list[str]) -> str:
    present = [p for p in parts if p]
    return "、".join(present) + "です。" if present else ""


def _each(parts: list[tuple[str, str]]) -> str:
    return "".join(f"{head}{value}です。" for head, value in parts if value)
