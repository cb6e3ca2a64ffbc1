"""The title screen: pick a heroine (portrait and profile preview), load, settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, OptionList, Static
from textual.widgets.option_list import Option

from serifu import plugins
from serifu.characters import CharacterCard
from serifu_game.plain import plain
from serifu_game.widgets.portrait import Portrait

if TYPE_CHECKING:
    from serifu_game.app import SerifuGame

LOGO = plain(
    ("セ リ フ", "bold #ff7aa2"),
    "  ",
    ("S E R I F U", "bold #f0e6ff"),
    "\n",
    ("～ 台本から生まれた、あの子と話そう ～", "#b8b8d0"),
)


def profile_text(card: CharacterCard, has_adapter: bool) -> Content:
    """The preview card beside her portrait (the card's text verbatim, never markup)."""
    hobbies = "、".join(card.hobbies)
    tuned = (
        ("● チューニング済みアダプタあり", "#8fe3a8")
        if has_adapter
        else ("○ 台本検索で会話", "#8fa8c8")
    )
    return plain(
        (card.name, "bold"),
        "  ",
        (card.reading, "dim"),
        f"\n{card.age}歳・{card.grade}・{card.club}\n"
        f"誕生日 {card.birthday}（{card.zodiac}）  血液型 {card.blood_type.removesuffix('型')}型\n"
        f"趣味 {hobbies}\n好物 {card.favorite_food}\n\n",
        (card.personality, "italic"),
        "\n\n",
        tuned,
    )


class TitleScreen(Screen[None]):
    """Choose a heroine and start."""

    BINDINGS = [("ctrl+l", "load", "ロード")]

    def compose(self) -> ComposeResult:
        self.cards = {rid: reg.item.card() for rid, reg in plugins.characters().items()}
        self.packs = {rid: reg.item for rid, reg in plugins.characters().items()}
        yield Static(LOGO, id="logo", markup=False)
        with Horizontal(id="title-main"):
            with Vertical(id="heroines-box"):
                yield Static("ヒロインを選んでください", classes="box-title", markup=False)
                yield OptionList(
                    *[
                        Option(plain(c.name, "  ", (c.short_name, "dim")), id=rid)
                        for rid, c in self.cards.items()
                    ],
                    id="heroines",
                    markup=False,
                )
            with Horizontal(id="preview"):
                first = next(iter(self.cards), "")
                yield Portrait(first, id="title-portrait")
                yield Static(id="title-profile", markup=False)
        with Horizontal(id="title-buttons"):
            yield Button("はじめる", id="start", variant="primary")
            yield Button("ロード", id="load")
            yield Button("設定", id="settings")
            yield Button("終了", id="quit", variant="error")
        yield Footer()

    def on_mount(self) -> None:
        heroines = self.query_one("#heroines", OptionList)
        if self.cards:
            heroines.highlighted = 0
            self._preview(next(iter(self.cards)))
        else:
            self.query_one("#title-profile", Static).update("キャラクターが登録されていません。")
        heroines.focus()

    def _preview(self, character: str) -> None:
        card = self.cards[character]
        has_adapter = bool(self.packs[character].adapters)
        self.query_one(Portrait).show(character)
        self.query_one("#title-profile", Static).update(profile_text(card, has_adapter))

    @on(OptionList.OptionHighlighted, "#heroines")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self._preview(event.option.id)

    @on(OptionList.OptionSelected, "#heroines")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            cast("SerifuGame", self.app).start_new_game(event.option.id)

    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        heroines = self.query_one("#heroines", OptionList)
        if heroines.highlighted is not None:
            option = heroines.get_option_at_index(heroines.highlighted)
            if option.id:
                cast("SerifuGame", self.app).start_new_game(option.id)

    @on(Button.Pressed, "#load")
    def action_load(self) -> None:
        from serifu_game.screens.saves import SaveLoadScreen

        game = cast("SerifuGame", self.app)

        def done(slot: int | None) -> None:
            if slot is not None:
                game.load_from(slot)

        self.app.push_screen(SaveLoadScreen("load", game.save_folder), done)

    @on(Button.Pressed, "#settings")
    def _settings(self) -> None:
        self.app.action_settings()  # type: ignore[attr-defined]

    @on(Button.Pressed, "#quit")
    def _quit(self) -> None:
        self.app.exit()
