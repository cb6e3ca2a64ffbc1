"""Settings: backend, model and adapter, text speed."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Select, Static

from serifu_game.settings import GameSettings

BACKENDS = (
    ("auto", "おまかせ（アダプタがあればLLM、なければ台本検索）"),
    ("llm", "LLM（ベースモデル＋アダプタ）"),
    ("retrieval", "台本検索（CPUで即答）"),
)
SPEEDS = (("瞬時", 0.0), ("はやい", 0.02), ("ふつう", 0.04), ("ゆっくり", 0.1))


def model_ids() -> list[str]:
    """Registered base-model ids (the settings' own model first, even if unregistered)."""
    from serifu import plugins

    return sorted(plugins.base_models())


class SettingsScreen(ModalScreen[GameSettings | None]):
    """Returns new settings (None with Esc or キャンセル)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "戻る")]

    def __init__(self, settings: GameSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        s = self.settings
        models = model_ids()
        if s.model not in models:
            models.insert(0, s.model)
        speed = min(SPEEDS, key=lambda kv: abs(kv[1] - s.text_speed))[1]
        with Vertical(id="settings-box", classes="dialog"):
            yield Static("[b]設定[/b]", classes="dialog-title")
            yield Label("返事の作り方")
            with RadioSet(id="backend"):
                for key, label in BACKENDS:
                    yield RadioButton(label, value=key == s.backend, name=key, id=f"backend-{key}")
            yield Label("モデル")
            yield Select([(m, m) for m in models], value=s.model, allow_blank=False, id="model")
            yield Label("アダプタのフォルダ（空欄：彼女に同梱のもの）")
            yield Input(value=s.adapter or "", placeholder="例: runs/kaede/adapter", id="adapter")
            yield Label("文字の速さ（台本検索）")
            yield Select([(k, v) for k, v in SPEEDS], value=speed, allow_blank=False, id="speed")
            with Horizontal(classes="dialog-buttons"):
                yield Button("保存", id="ok", variant="primary")
                yield Button("キャンセル", id="cancel")

    def result(self) -> GameSettings:
        pressed = self.query_one("#backend", RadioSet).pressed_button
        backend = pressed.name if pressed is not None and pressed.name else self.settings.backend
        adapter = self.query_one("#adapter", Input).value.strip() or None
        return self.settings.model_copy(
            update={
                "backend": backend,
                "model": str(self.query_one("#model", Select).value),
                "adapter": adapter,
                "text_speed": float(self.query_one("#speed", Select).value),  # type: ignore[arg-type]
            }
        )

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(self.result())

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
