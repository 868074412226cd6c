"""Train a velocity field on a coupling: the one recipe every method below reuses.

1-RF is ``train_flow(new_mlp(), IndependentCoupling(...), train)``; OT-CFM is ``train_flow`` on a
``MinibatchOTCoupling``; the full-OT-map flow on a ``FullOTCoupling``; the (k+1)-RF is ``train_flow``
on a ``ReflowCoupling`` of the k-RF. All use the linear path and the tangent target unless a
:class:`FlowConfig` says otherwise:

    min_theta E_{(X0, X1) ~ coupling, t ~ U[0, 1]} || v_theta((1-t) X0 + t X1, t) - (X1 - X0) ||^2

Every recipe of ``bezkit.methods`` takes its arguments in one order: the network(s) it starts from
(teachers, or here the model to train), the data (a coupling, or source and target samplers), the
``TrainConfig`` (``train``), the method's own frozen config, then keyword-only runtime options
(``progress``, ``resume_from``, ``checkpoint_metadata``); each returns a ``RecipeResult``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from bezkit.couplings.pairs import Coupling
from bezkit.methods.result import RecipeResult, fixed_pairs
from bezkit.models.factory import build_model, model_spec
from bezkit.models.mlp import MLPVelocity
from bezkit.paths.bezier import BezierPath
from bezkit.paths.gaussian import check_sigma
from bezkit.paths.targets import TargetKind, check_target
from bezkit.paths.time_sampling import TimeSampler
from bezkit.training import trainer
from bezkit.training.config import TrainConfig
from bezkit.training.objectives import FlowMatchingLoss

__all__ = [
    "INITS",
    "FlowConfig",
    "Init",
    "check_init",
    "check_recipe_args",
    "new_mlp",
    "student_from",
    "train_flow",
    "with_progress",
]

Init = Literal["teacher", "scratch"]
INITS = ("teacher", "scratch")


def check_init(init: str, field: str = "init") -> None:
    """Raise a ``ValueError`` naming ``field`` unless ``init`` is ``"teacher"`` or ``"scratch"``."""
    if init not in INITS:
        raise ValueError(f"{field} must be 'teacher' or 'scratch', got {init!r}")


@dataclass(frozen=True)
class FlowConfig:
    """The regression of :func:`train_flow` (defaults: the straight line, its tangent, uniform t).

    ``path``: the path ``B(t)`` through the pair (None: the straight line); ``target``: ``"tangent"``
    ``B'(t)``, ``"endpoint"`` ``(X1 - B(t)) / (1 - t)`` or ``"secant"`` (with ``grid_steps=N``:
    ``(B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i)`` on ``t_i = i / N``); ``time_sampler``: the law of
    ``t`` (None: uniform on [0, 1]); ``sigma``: the width of I-CFM / OT-CFM's Gaussian path around
    the line, ``x_t = (1 - t) X0 + t X1 + sigma eps`` (0: the line; > 0 only with the linear path
    and the tangent target, ``bezkit.paths.gaussian``).
    """

    path: BezierPath | None = None
    target: TargetKind = "tangent"
    time_sampler: TimeSampler | None = None
    grid_steps: int | None = None
    sigma: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a clear error, naming the field, for an inconsistent option."""
        if self.path is not None and not isinstance(self.path, BezierPath):
            raise TypeError(f"path must be a BezierPath or None, got {type(self.path).__name__}")
        if self.grid_steps is not None and (
            isinstance(self.grid_steps, bool) or not isinstance(self.grid_steps, int)
        ):
            raise ValueError(f"grid_steps must be an int or None, got {self.grid_steps!r}")
        check_target(self.target, self.grid_steps)
        check_sigma(self.sigma, self.path, self.target)


def check_recipe_args(
    recipe: str, train: object, config: object, config_type: type, name: str
) -> None:
    """Raise a ``TypeError`` naming the argument unless ``train`` is a :class:`TrainConfig` and
    ``config`` (the method's config, argument ``name``) is a ``config_type`` or None."""
    if not isinstance(train, TrainConfig):
        raise TypeError(f"{recipe}: train must be a TrainConfig, got {type(train).__name__}")
    if config is not None and not isinstance(config, config_type):
        raise TypeError(
            f"{recipe}: {name} must be a {config_type.__name__}, got {type(config).__name__}"
        )


def with_progress(train: TrainConfig, progress: bool | None) -> TrainConfig:
    """``train`` with its progress bar set by a recipe's ``progress`` keyword (``None`` keeps
    ``train.progress``)."""
    return train if progress is None else dataclasses.replace(train, progress=bool(progress))


def new_mlp(
    dim: int = 2,
    *,
    hidden: int = 256,
    depth: int = 3,
    seed: int = 0,
    activation: str = "silu",
    time_input: str = "sinusoidal",
) -> MLPVelocity:
    """A freshly initialised :class:`MLPVelocity` (initialisation seeded); ``activation`` and
    ``time_input`` as there (``bezkit.models.mlp.MODEL_SHAPES`` names the torchcfm shape)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLPVelocity(
            dim, hidden=hidden, depth=depth, activation=activation, time_input=time_input
        )


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
    model: nn.Module,
    coupling: Coupling,
    train: TrainConfig,
    flow: FlowConfig | None = None,
    *,
    progress: bool | None = None,
    resume_from: str | Path | None = None,
    checkpoint_metadata: dict[str, Any] | None = None,
    validation: trainer.ValidationFn | None = None,
) -> RecipeResult:
    """Regress ``model`` (trained in place) on ``flow``'s path and target for pairs drawn from
    ``coupling``: ``min_theta E || v_theta(B(t), t) - target(t) ||^2``.

    ``validation`` (with ``train.val_every``): a held-out loss ``validation(model) -> float``;
    ``RecipeResult.best_model`` is then the model at its lowest value (see
    ``bezkit.training.train``).

    ``progress`` shows the training's progress bar (``None``: as ``train.progress`` says);
    ``resume_from`` continues an interrupted run from its training state; ``checkpoint_metadata``
    (JSON-able) is written into every checkpoint of the run, periodic or final (see
    ``bezkit.training.train``). ``RecipeResult.pairs`` is the coupling's fixed set of pairs when it
    has one (a ``PairPool``, a generated ``ReflowCoupling``), else None.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"train_flow(model, coupling, train, flow): model must be an nn.Module, got "
            f"{type(model).__name__} (the model comes first, then the coupling)"
        )
    check_recipe_args("train_flow", train, flow, FlowConfig, "flow")
    train = with_progress(train, progress)
    flow = flow if flow is not None else FlowConfig()
    flow.validate()
    loss = FlowMatchingLoss(
        flow.path,
        target=flow.target,
        time_sampler=flow.time_sampler,
        grid_steps=flow.grid_steps,
        sigma=flow.sigma,
    )
    result = trainer.train(
        model,
        loss,
        coupling.sample,
        train,
        resume_from=resume_from,
        checkpoint_metadata=checkpoint_metadata,
        validation=validation,
    )
    return RecipeResult.from_training(result, pairs=fixed_pairs(coupling))
