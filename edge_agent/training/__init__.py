"""Training: the only package that imports torch. Public API: `train`, `TrainConfig`, `TrainResult`."""

from edge_agent.training.trainer import TrainConfig, TrainingError, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "train"]
