"""QLoRA training: Serifu's own loop (``trainer``: :class:`Trainer` + callbacks) and the
report's recipe (``recipe``)."""

from serifu.training.callbacks import Callback
from serifu.training.trainer import Trainer, TrainResult, train

__all__ = ["Callback", "TrainResult", "Trainer", "train"]
