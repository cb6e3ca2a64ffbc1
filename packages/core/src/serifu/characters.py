"""Character cards (profile TOML) and character packs (card + scripts), as plugins register them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serifu.errors import SerifuError
from serifu.kinds import ID_PATTERN


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
    short_name: str = Field(description="Speaker label used in her scripts.")
    reading: str = Field(description="Reading of the name in kana.")
    age: int = Field(description="Age in years.")
    grade: str = Field(description="School year.")
    birthday: str = Field(description="Birthday, e.g. 8月3日.")
    zodiac: str = Field(description="Zodiac sign.")
    blood_type: str = Field(description="Blood type.")
    height_cm: int = Field(description="Height in cm.")
    hobbies: list[str] = Field(description="Hobbies.")
    specialty: str = Field(description="What she is good at.")
    favorite_food: str = Field(description="Favourite food.")
    disliked_food: str = Field(description="Food she dislikes.")
    club: str = Field(description="Club.")
    friends: list[str] = Field(description="Friends.")
    first_person: str = Field(description="First-person pronoun.")
    speech_type: str = Field(description="Speech style in a few English words.")
    personality: str = Field(description="Personality, a few sentences.")
    speech_notes: str = Field(description="How she talks.")
    protagonist: str = Field(default="主人公", description="Speaker label of the player character.")
    questions: list[ProfileQuestion] = Field(description="Profile questions (at least 11).")

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-'")
        return v


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

    @property
    def description(self) -> str:
        return f"character pack {self.id}"

    def card(self) -> CharacterCard:
        return load_card(self.card_path)


def load_card(path: Path) -> CharacterCard:
    """Read and validate a card; errors name the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SerifuError("character card not found", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise SerifuError(f"not valid TOML ({exc})", path=path) from None
    try:
        return CharacterCard.model_validate(raw)
    except ValidationError as exc:
        from serifu.config import format_validation_error

        raise SerifuError(format_validation_error(exc), path=path) from None


def system_prompt(card: CharacterCard) -> str:
    """The report's profile system prompt, rendered from a card."""
    lines = [
        "あなたは以下の設定に従ってロールプレイをしてください。",
        f"名前は{card.name}（{card.reading}）です。",
        f"年齢は{card.age}歳、{card.grade}です。",
        f"誕生日は{card.birthday}、{card.zodiac}、血液型は{card.blood_type.removesuffix('型')}型、身長は{card.height_cm}cmです。",
        f"趣味は{'、'.join(card.hobbies)}です。特技は{card.specialty}です。",
        f"好きな食べ物は{card.favorite_food}、苦手な食べ物は{card.disliked_food}です。",
        f"部活は{card.club}です。友達は{'、'.join(card.friends)}です。",
        f"一人称は「{card.first_person}」です。性格：{card.personality}",
        f"話し方：{card.speech_notes}",
        "この設定に従って、以下の入力に対して適切な応答を返してください：",
    ]
    return "\n".join(lines)
