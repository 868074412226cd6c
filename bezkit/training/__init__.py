"""Training: the loop, its configuration, EMA, device choice and checkpoints."""

from bezkit.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from bezkit.training.config import TrainConfig
from bezkit.training.device import choose_device
from bezkit.training.ema import EMA
from bezkit.training.ensemble import train_ensemble
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import TrainResult, generator_for, train

__all__ = [
    "EMA",
    "Checkpoint",
    "CheckpointError",
    "FlowMatchingLoss",
    "TrainConfig",
    "TrainResult",
    "choose_device",
    "generator_for",
    "load_checkpoint",
    "save_checkpoint",
    "train",
    "train_ensemble",
]
