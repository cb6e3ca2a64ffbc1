"""The trainer's callbacks: progress bar, TensorBoard, periodic checkpoints and validation.

A callback subclasses :class:`Callback` and overrides what it needs; the
:class:`serifu.training.trainer.Trainer` calls them in list order. Callbacks see the
trainer (``trainer.state``, ``trainer.config``, ``trainer.total_steps``,
``trainer.model``, ``trainer.is_main`` …) and must not change the model or optimizer:
a run with or without them trains the same adapter.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serifu.training.trainer import Trainer


class Callback:
    """Hooks of one training run (all optional)."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """After the model, optimizer and any checkpoint are loaded, before the first step."""

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        """After optimizer step ``step`` (1-based) committed; ``loss`` is its mean token loss."""

    def on_evaluate(self, trainer: Trainer, step: int, loss: float) -> None:
        """After a validation loss was computed at ``step``."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Always, also after Ctrl-C or an error (close files here)."""


class ProgressBar(Callback):
    """A tqdm bar with loss and tokens/s (main process only)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.total_steps, initial=trainer.state.step, desc="train", unit="step"
        )

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        state = trainer.state
        self.bar.update()
        self.bar.set_postfix(
            loss=f"{loss:.3f}", tok_s=f"{state.tokens / max(state.train_seconds, 1e-9):.0f}"
        )

    def on_evaluate(self, trainer: Trainer, step: int, loss: float) -> None:
        self.bar.write(f"step {step}: validation loss {loss:.4f}", file=sys.stderr)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()


class TensorBoardLogger(Callback):
    """Scalars for TensorBoard: ``train/loss``, ``train/learning_rate``,
    ``train/tokens_per_s``, ``train/grad_norm``, ``eval/loss``. On resume, events after
    the checkpoint's step are hidden (``purge_step``), so the curves have no duplicates."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.writer: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        step = trainer.state.step
        self.writer = SummaryWriter(str(self.log_dir), purge_step=step + 1 if step else None)
        if not step:
            self.writer.add_text("config", f"```\n{trainer.config.model_dump_json(indent=2)}\n```")

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        state = trainer.state
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/learning_rate", trainer.learning_rate, step)
        if state.train_seconds:
            self.writer.add_scalar("train/tokens_per_s", state.tokens / state.train_seconds, step)
        if trainer.grad_norm is not None and math.isfinite(trainer.grad_norm):
            self.writer.add_scalar("train/grad_norm", trainer.grad_norm, step)

    def on_evaluate(self, trainer: Trainer, step: int, loss: float) -> None:
        self.writer.add_scalar("eval/loss", loss, step)

    def on_train_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class PeriodicValidation(Callback):
    """The validation loss every ``every`` steps (not at the last step: the trainer
    evaluates there anyway)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if step % self.every == 0 and step < trainer.total_steps:
            trainer.validate()


class PeriodicCheckpoint(Callback):
    """A checkpoint every ``every`` steps (main process only; the last step's is the
    trainer's own)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if step % self.every == 0 and step < trainer.total_steps and trainer.is_main:
            trainer.save_checkpoint()


class StepFunction(Callback):
    """Calls ``fn(step, loss)`` after every step (``train(on_step=...)``)."""

    def __init__(self, fn: Callable[[int, float], None]) -> None:
        self.fn = fn

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        self.fn(step, loss)
