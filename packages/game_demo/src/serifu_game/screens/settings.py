"""Settings: backend, model and adapter, text speed, input limit."""

from __future__ import annotations

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Select, Static

from serifu_game.plain import plain
from serifu_game.settings import GameSettings

BACKENDS = (
    ("auto", "おまかせ（アダプタがあればLLM、なければ台本検索）"),
    ("llm", "LLM（ベースモデル＋アダプタ）"),
    ("retrieval", "台本検索（CPUで即答）"),
)
SPEEDS = (("瞬時", 0.0), ("はやい", 0.02), ("ふつう", 0.04), ("ゆっくり", 0.1))


def model_ids() -> list[str]:
    """Registered base-model ids."""
    from serifu import plugins

    return sorted(plugins.base_models())


def default_model_or_none() -> str | None:
    """Serifu's default base model, or None when nothing names one."""
    from serifu.errors import SerifuError
    from serifu_game.backends import default_model

    try:
        return default_model()
    except SerifuError:
        return None


class SettingsScreen(ModalScreen[GameSettings | None]):
    """Returns new settings (None with Esc or キャンセル)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "戻る")]

    def __init__(self, settings: GameSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        s = self.settings
        models = model_ids()
        self.default_model = default_model_or_none()
        current = s.model or self.default_model
        if current is not None and current not in models:
            models.insert(0, current)
        speed = min(SPEEDS, key=lambda kv: abs(kv[1] - s.text_speed))[1]
        with Vertical(id="settings-box", classes="dialog"):
            yield Static(plain(("設定", "bold")), classes="dialog-title", markup=False)
            yield Label("返事の作り方", markup=False)
            with RadioSet(id="backend"):
                for key, label in BACKENDS:
                    yield RadioButton(label, value=key == s.backend, name=key, id=f"backend-{key}")
            yield Label("モデル", markup=False)
            yield Select(
                [(plain(m), m) for m in models],
                value=current if current is not None else Select.BLANK,
                allow_blank=current is None,
                id="model",
            )
            yield Label("アダプタのフォルダ（空欄：彼女に同梱のもの）", markup=False)
            yield Input(value=s.adapter or "", placeholder="例: runs/kaede/adapter", id="adapter")
            with Horizontal(id="settings-row"):
                with Vertical():
                    yield Label("文字の速さ（台本検索）", markup=False)
                    yield Select(
                        [(k, v) for k, v in SPEEDS], value=speed, allow_blank=False, id="speed"
                    )
                with Vertical():
                    yield Label("入力できる文字数（10〜2000）", markup=False)
                    yield Input(value=str(s.max_input_chars), type="integer", id="max-input")
            yield Static(id="settings-problem", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("保存", id="ok", variant="primary")
                yield Button("キャンセル", id="cancel")

    def result(self) -> GameSettings:
        """The edited settings; ``ValueError`` (with a message to show) when a value is bad."""
        pressed = self.query_one("#backend", RadioSet).pressed_button
        backend = pressed.name if pressed is not None and pressed.name else self.settings.backend
        adapter = self.query_one("#adapter", Input).value.strip() or None
        chosen = self.query_one("#model", Select).value
        model = None if chosen is Select.BLANK else str(chosen)
        if model == self.default_model and self.settings.model is None:
            model = None  # keep following Serifu's default
        raw_limit = self.query_one("#max-input", Input).value.strip()
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ValueError(f"文字数は整数で入力してください（{raw_limit!r}）。") from None
        values = {
            **self.settings.model_dump(),
            "backend": backend,
            "model": model,
            "adapter": adapter,
            "text_speed": float(self.query_one("#speed", Select).value),  # type: ignore[arg-type]
            "max_input_chars": limit,
        }
        try:
            return GameSettings.model_validate(values)
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])
            raise ValueError(f"設定値が範囲外です（{where}: {exc.errors()[0]['msg']}）。") from None

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        try:
            settings = self.result()
        except ValueError as exc:
            problem = self.query_one("#settings-problem", Static)
            problem.update(plain((str(exc), "#ff6b6b")))
            problem.display = True
            return
        self.dismiss(settings)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
