"""The Serifu dating-sim app: title, days, scenes with a streaming heroine, saves, settings."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from serifu import plugins
from serifu.characters import CharacterPack
from serifu.errors import SerifuError
from serifu_game.backends import Backend, BackendChoice, choose_backend, create_backend
from serifu_game.save import SaveError, read_slot, write_slot
from serifu_game.settings import GameSettings, load_settings, save_settings
from serifu_game.state import GameState


class SerifuGame(App[None]):
    """``serifu play``. With ``character`` it skips the title and opens day 1."""

    CSS_PATH = "app.tcss"
    TITLE = "Serifu"
    SUB_TITLE = "セリフ ― 台本から生まれたあの子と話そう"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", "終了", priority=True),
        Binding("ctrl+o", "settings", "設定"),
    ]

    def __init__(
        self,
        *,
        character: str | None = None,
        backend: str | None = None,
        model: str | None = None,
        adapter: str | None = None,
        seed: int = 0,
        text_speed: float | None = None,
        save_folder: Path | None = None,
        settings_file: Path | None = None,
        score_replies: bool = True,
    ) -> None:
        super().__init__()
        self.settings_file = settings_file
        self.settings, problem = load_settings(settings_file)
        overrides: dict[str, object] = {}
        if backend is not None:
            overrides["backend"] = backend
        if model is not None:
            overrides["model"] = model
        if adapter is not None:
            overrides["adapter"] = adapter
        if text_speed is not None:
            overrides["text_speed"] = text_speed
        self.settings = self.settings.model_copy(update=overrides)
        self.start_character = character
        self.seed = seed
        self.save_folder = save_folder
        self.score_replies = score_replies
        self.messages: list[str] = [problem] if problem else []
        self.state: GameState | None = None
        self.pack: CharacterPack | None = None
        self.choice: BackendChoice | None = None
        self.backend: Backend | None = None
        self._llm_key: tuple[object, ...] | None = None

    # -- messages ----------------------------------------------------------------
    def tell(self, message: str, *, severity: str = "information") -> None:
        """Show a toast (plain text, never markup) and remember the message (tests read it)."""
        self.messages.append(message)
        self.notify(message, severity=severity, timeout=6, markup=False)  # type: ignore[arg-type]

    # -- flow --------------------------------------------------------------------
    def on_mount(self) -> None:
        from serifu_game.screens.title import TitleScreen

        for message in self.messages:
            self.notify(message, severity="warning", markup=False)
        if self.start_character:
            self.start_new_game(self.start_character, first=True)
        else:
            self.push_screen(TitleScreen())

    def use_character(self, character: str) -> CharacterPack:
        """Select her pack and build the backend the settings call for."""
        self.pack = plugins.get_character(character)
        self.rebuild_backend()
        return self.pack

    def rebuild_backend(self) -> None:
        """Build the backend the settings call for; a loaded model is kept when they agree."""
        assert self.pack is not None
        s = self.settings
        choice = choose_backend(
            self.pack, backend=s.backend, model=s.model, adapter=s.adapter or None
        )
        key = (self.pack.id, choice, s.max_new_tokens)
        if choice.kind == "llm" and self.backend is not None and key == self._llm_key:
            self.choice = choice  # same heroine, model and adapter: no second load
            return
        self._llm_key = key if choice.kind == "llm" else None
        self.choice = choice
        self.backend = create_backend(
            self.choice,
            self.pack,
            seed=self.seed,
            pace=s.text_speed,
            max_new_tokens=s.max_new_tokens,
        )

    def start_new_game(self, character: str, *, first: bool = False) -> None:
        self.use_character(character)
        self.state = GameState(character=character, seed=self.seed)
        self._open_scene(first=first)

    def _open_scene(self, *, first: bool = False) -> None:
        from serifu_game.screens.scene import SceneScreen

        screen = SceneScreen()
        if first:
            self.push_screen(screen)
        else:
            self.switch_screen(screen)

    def load_state(self, state: GameState) -> None:
        """Continue a saved game (any screen)."""
        try:
            self.use_character(state.character)
        except SerifuError as exc:
            self.tell(f"このセーブデータのキャラクターが見つかりません：{exc}", severity="error")
            return
        self.state = state
        from serifu_game.screens.scene import SceneScreen

        while len(self.screen_stack) > 2:
            self.pop_screen()
        if len(self.screen_stack) == 2:
            self.switch_screen(SceneScreen())
        else:
            self.push_screen(SceneScreen())

    def save_to(self, slot: int) -> None:
        assert self.state is not None
        try:
            path = write_slot(slot, self.state, self.save_folder)
        except (OSError, SaveError) as exc:
            self.tell(f"セーブできませんでした：{exc}", severity="error")
            return
        self.tell(f"スロット{slot}にセーブしました（{path.name}）")

    def load_from(self, slot: int) -> None:
        try:
            state, _ = read_slot(slot, self.save_folder)
        except SaveError as exc:
            self.tell(str(exc), severity="error")
            return
        self.load_state(state)
        self.tell(f"スロット{slot}をロードしました")

    # -- actions -----------------------------------------------------------------
    def action_settings(self) -> None:
        from serifu_game.screens.settings import SettingsScreen

        if isinstance(self.screen, SettingsScreen):
            return

        def apply(new: GameSettings | None) -> None:
            if new is None:
                return
            self.settings = new
            try:
                save_settings(new, self.settings_file)
            except OSError as exc:
                self.tell(f"設定を保存できませんでした：{exc}", severity="error")
            if self.pack is not None:
                self.rebuild_backend()
                assert self.choice is not None
                self.tell(self.choice.notice)
                from serifu_game.screens.scene import SceneScreen

                if isinstance(self.screen, SceneScreen):
                    self.screen.backend_changed()

        self.push_screen(SettingsScreen(self.settings), apply)
