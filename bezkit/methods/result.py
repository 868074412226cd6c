"""The one result type of every recipe in ``bezkit.methods``.

Every recipe (``train_flow``, ``reflow_round``, ``distill``, ``bezier_distill``, ``bdense_distill``,
``bdense_train``) returns a :class:`RecipeResult`. Its names mean the same thing everywhere:

- ``model``: the model to sample with, ``ema_model`` when EMA was used, else ``raw_model``;
- ``raw_model``: the trained weights; ``ema_model``: their exponential moving average
  ``theta_ema <- d theta_ema + (1 - d) theta`` (None without EMA, ``TrainConfig.ema_decay``);
- ``losses``, ``steps``, ``wall_seconds``: the training record;
- ``pairs``: the fixed pairs the model was trained on (None when they were drawn afresh);
- ``k``: the round of a reflow round (the k-RF), None for every other recipe;
- ``best_model``, ``best_step``, ``val_losses``: with validation (``TrainConfig.val_every``, the
  recipe's ``validation``), the model at the step of lowest validation loss and every
  ``[step, loss]`` (None and empty without).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from bezkit.couplings.pairs import Coupling, PairPool, Pairs
from bezkit.training.trainer import TrainResult

__all__ = ["RecipeResult", "fixed_pairs"]


@dataclass(frozen=True)
class RecipeResult:
    """A trained model, its EMA copy, its training record and the pairs it was trained on."""

    raw_model: nn.Module
    ema_model: nn.Module | None
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    wall_seconds: float = 0.0
    pairs: Pairs | None = None
    k: int | None = None
    best_model: nn.Module | None = None
    best_step: int | None = None
    val_losses: list[list[float]] = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        """The model to sample with: ``ema_model`` when EMA was used, else ``raw_model``."""
        return self.ema_model if self.ema_model is not None else self.raw_model

    @classmethod
    def from_training(
        cls, training: TrainResult, *, pairs: Pairs | None = None, k: int | None = None
    ) -> RecipeResult:
        """The recipe's result from the trainer's ``TrainResult`` (same models, same record)."""
        return cls(
            raw_model=training.raw_model,
            ema_model=training.ema_model,
            losses=list(training.losses),
            steps=training.steps,
            wall_seconds=training.wall_seconds,
            pairs=pairs,
            k=k,
            best_model=training.best_model,
            best_step=training.best_step,
            val_losses=[list(v) for v in training.val_losses],
        )


def fixed_pairs(coupling: Coupling) -> Pairs | None:
    """The fixed set of pairs a coupling samples from (a ``PairPool`` or a cached coupling such as
    ``ReflowCoupling``, once generated), or None for a coupling that draws fresh pairs."""
    if isinstance(coupling, PairPool):
        return coupling.pairs
    pairs = getattr(coupling, "pairs", None)
    return pairs if isinstance(pairs, Pairs) else None
