"""k-RF + distill (Liu et al. 2022; METHODS.md section 4).

One-step student ``T(z) = z + v(z, 0)`` trained on the teacher's pairs ``(Z0, Z1)``:

    min_theta E || v_theta(Z0, 0) - (Z1 - Z0) ||^2

The N-step variant draws ``t`` from ``{0, 1/N, ..., (N-1)/N}`` on the linear path between the pair.
This is the flow-matching loss with a discrete time sampler, so it reuses the same trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from bezkit.couplings.pairs import Coupling
from bezkit.methods.flow import (
    FlowConfig,
    Init,
    check_init,
    check_recipe_args,
    student_from,
    train_flow,
)
from bezkit.methods.result import RecipeResult
from bezkit.paths.time_sampling import distill_times
from bezkit.training.config import TrainConfig

__all__ = ["DistillConfig", "distill"]


@dataclass(frozen=True)
class DistillConfig:
    """k-RF distillation's options: ``steps`` (N, the student's step count; 1 = one-step) and
    ``init`` (the student starts as a copy of the teacher, ``"teacher"``, or fresh, ``"scratch"``)."""

    steps: int = 1
    init: Init = "teacher"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a clear error, naming the field, for a bad value."""
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        check_init(self.init)


def distill(
    teacher: nn.Module,
    pairs: Coupling,
    train: TrainConfig,
    distillation: DistillConfig | None = None,
    *,
    progress: bool | None = None,
    resume_from: str | Path | None = None,
    checkpoint_metadata: dict[str, Any] | None = None,
) -> RecipeResult:
    """Distil the teacher's pairing ``pairs`` into an N-step student (``N = distillation.steps``):
    ``min_theta E_{t in {0, 1/N, ..., (N-1)/N}} ||v_theta(Z_t, t) - (Z1 - Z0)||^2``, starting from
    a copy of the teacher (``init="teacher"``) or a fresh network (``"scratch"``).

    ``progress`` shows the training's progress bar (``None``: as ``train.progress`` says);
    ``resume_from`` continues an interrupted run from its training state; ``checkpoint_metadata``
    goes into every checkpoint of the run."""
    check_recipe_args("distill", train, distillation, DistillConfig, "distillation")
    distillation = distillation if distillation is not None else DistillConfig()
    distillation.validate()
    student = student_from(teacher, distillation.init, seed=train.seed)
    return train_flow(
        student,
        pairs,
        train,
        FlowConfig(time_sampler=distill_times(distillation.steps)),
        progress=progress,
        resume_from=resume_from,
        checkpoint_metadata=checkpoint_metadata,
    )
