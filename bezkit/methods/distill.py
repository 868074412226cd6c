"""k-RF + distill (Liu et al. 2022; METHODS.md section 4).

One-step student ``T(z) = z + v(z, 0)`` trained on the teacher's pairs ``(Z0, Z1)``:

    min_theta E || v_theta(Z0, 0) - (Z1 - Z0) ||^2

The N-step variant draws ``t`` from ``{0, 1/N, ..., (N-1)/N}`` on the linear path between the pair.
This is the flow-matching loss with a discrete time sampler, so it reuses the same trainer.
"""

from __future__ import annotations

from torch import nn

from bezkit.couplings.pairs import Coupling
from bezkit.methods.flow import Init, student_from, train_flow
from bezkit.paths.time_sampling import distill_times
from bezkit.training.config import TrainConfig
from bezkit.training.trainer import TrainResult

__all__ = ["distill"]


def distill(
    teacher: nn.Module,
    pairs: Coupling,
    config: TrainConfig,
    *,
    steps: int = 1,
    init: Init = "teacher",
) -> TrainResult:
    """Distil the teacher's pairing ``pairs`` into a ``steps``-step student:
    ``min_theta E_{t in {0, 1/N, ..., (N-1)/N}} ||v_theta(Z_t, t) - (Z1 - Z0)||^2`` (``N = steps``),
    starting from a copy of the teacher (``init="teacher"``) or a fresh network (``"scratch"``)."""
    student = student_from(teacher, init, seed=config.seed)
    return train_flow(pairs, student, config, time_sampler=distill_times(steps))
