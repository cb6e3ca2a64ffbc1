"""QLoRA training: Serifu's own loop (``trainer``) and the report's recipe (``recipe``)."""

from serifu.training.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
