"""Train a velocity field on a coupling: the one recipe every method below reuses.

1-RF is ``train_flow(IndependentCoupling(...))``; OT-CFM is ``train_flow(MinibatchOTCoupling(...))``;
the full-OT-map flow is ``train_flow(FullOTCoupling(...))``; the (k+1)-RF is ``train_flow`` on a
``ReflowCoupling`` of the k-RF. All use the linear path and the tangent target unless told otherwise:

    min_theta E_{(X0, X1) ~ coupling, t ~ U[0, 1]} || v_theta((1-t) X0 + t X1, t) - (X1 - X0) ||^2
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from bezkit.couplings.pairs import Coupling
from bezkit.models.factory import build_model, model_spec
from bezkit.models.mlp import MLPVelocity
from bezkit.paths.bezier import BezierPath
from bezkit.paths.targets import TargetKind
from bezkit.paths.time_sampling import TimeSampler
from bezkit.training.config import TrainConfig
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import TrainResult, train

__all__ = ["new_mlp", "student_from", "train_flow"]

Init = Literal["teacher", "scratch"]


def new_mlp(dim: int = 2, *, hidden: int = 256, depth: int = 3, seed: int = 0) -> MLPVelocity:
    """A freshly initialised :class:`MLPVelocity` (initialisation seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLPVelocity(dim, hidden=hidden, depth=depth)


def student_from(teacher: nn.Module, init: Init = "teacher", *, seed: int = 0) -> nn.Module:
    """A copy of the teacher (fine-tuning) or a new network of the same spec (from scratch)."""
    if init == "teacher":  # an EMA teacher has frozen parameters: the copy must train
        return copy.deepcopy(teacher).train().requires_grad_(True)
    if init == "scratch":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(model_spec(teacher))
    raise ValueError(f"unknown student init {init!r}; use 'teacher' or 'scratch'")


def train_flow(
    coupling: Coupling,
    model: nn.Module,
    config: TrainConfig,
    *,
    path: BezierPath | None = None,
    target: TargetKind = "tangent",
    time_sampler: TimeSampler | None = None,
    grid_steps: int | None = None,
    resume_from: str | Path | None = None,
) -> TrainResult:
    """Regress ``model`` on ``path``'s ``target`` for pairs drawn from ``coupling``
    (``grid_steps``: the N of the ``secant`` target's grid); ``resume_from`` continues an
    interrupted run from its training state (``train``)."""
    loss = FlowMatchingLoss(path, target=target, time_sampler=time_sampler, grid_steps=grid_steps)
    return train(model, loss, coupling.sample, config, resume_from=resume_from)
