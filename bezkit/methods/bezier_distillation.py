"""Bezier distillation: bezkit's precise reading of the seed paper (METHODS.md section 4).

For each pair ``(X0, X1)`` a Bezier curve of order ``n`` is built with guides from teachers:

    B(t) = sum_i C(n, i) (1-t)^(n-i) t^i P_i,   P_0 = X0,  P_n = X1,  P_i = G_i (i = 1..n-1)

- guide ``i`` comes from teacher ``i`` (or one teacher for all): its state at time ``s_i`` along its
  trajectory from X0, by one Euler step ``Z = X0 + s_i v_i(X0, 0)`` (``guide_state="euler"``, the
  seed's "running a teacher one step") or by its ODE solution at ``s_i`` (``"ode"``); the state is
  placed as a ``control`` point or the curve is made to ``interpolate`` it (see ``paths/guides.py``);
  ``guide_state="one-step"`` is the seed's most literal reading: one *full* teacher step
  ``X_T = X0 + v_T(X0, 0)`` (the Euler state at s = 1) used as the control point;
- the endpoint is real data with ``X0 = ODE_teacher^-1(X1)`` (``endpoint="data"``, the seed's claim
  that a real endpoint stops error accumulation), the teacher's forward endpoint (``"teacher"``) or an
  independent draw (``"independent"``);
- the student regresses the ``tangent`` B'(t) or the one-step-friendly ``endpoint`` target
  ``(X1 - B(t)) / (1 - t)`` at ``t ~ U[0, 1]``, or on the N-step grid when ``distill_steps = N``;
  there the grid-consistent ``secant`` target ``N (B(t_{i+1}) - B(t_i))`` is a third choice.

Order 1 has no guides: with ``endpoint="teacher"`` it is exactly reflow training, and with
``distill_steps`` it is exactly k-RF distillation (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.couplings.reflow import DataAnchoredCoupling, ReflowCoupling
from bezkit.data.toy2d import Sampler
from bezkit.methods.flow import (
    FlowConfig,
    Init,
    check_init,
    check_recipe_args,
    student_from,
    train_flow,
)
from bezkit.methods.result import RecipeResult
from bezkit.paths.bezier import BezierPath
from bezkit.paths.guides import (
    GUIDE_PLACEMENTS,
    GuidePlacement,
    check_guide_times,
    place_guides,
)
from bezkit.paths.targets import TARGETS, TargetKind
from bezkit.paths.time_sampling import distill_times
from bezkit.solvers.ode import solve_ode
from bezkit.training.config import TrainConfig

__all__ = [
    "ENDPOINTS",
    "GUIDE_STATES",
    "BezierDistillConfig",
    "Endpoint",
    "GuideState",
    "bezier_distill",
    "bezier_guides",
    "make_bezier_pairs",
    "teacher_state",
]

Endpoint = Literal["data", "teacher", "independent"]
#: Where a pair's endpoint comes from (the one tuple the CLI, widgets and experiment use).
ENDPOINTS: tuple[str, ...] = ("data", "teacher", "independent")
GuideState = Literal["euler", "ode", "one-step"]
#: How a guide's teacher state is made (the one tuple the CLI, widgets and experiment use).
GUIDE_STATES: tuple[str, ...] = ("euler", "ode", "one-step")


@dataclass(frozen=True)
class BezierDistillConfig:
    """Every choice of a Bezier distillation run (defaults: quadratic, data endpoint, control guide,
    endpoint target, uniform t).

    ``guide_state``: ``"euler"`` (``X0 + s_i v(X0, 0)``), ``"ode"`` (the teacher's ODE state at
    ``s_i``) or ``"one-step"`` (the literal guide ``X0 + v(X0, 0)``, control placement only).
    """

    order: int = 2
    guide_times: tuple[float, ...] | None = None  # default: s_i = i / order
    placement: GuidePlacement = "control"
    guide_state: GuideState = "euler"
    endpoint: Endpoint = "data"
    endpoint_teacher: int = 0
    target: TargetKind = "endpoint"
    distill_steps: int | None = None
    n_pairs: int = 10_000
    teacher_steps: int = 100
    teacher_solver: str = "euler"
    init: Init = "teacher"
    pair_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def times(self) -> tuple[float, ...]:
        """The guide times ``s_1 < ... < s_{order-1}`` (default ``s_i = i / order``)."""
        if self.guide_times is None:
            return tuple(i / self.order for i in range(1, self.order))
        return check_guide_times(self.guide_times)

    def flow(self) -> FlowConfig:
        """The student's regression, built in this one place for every caller (the recipe, the
        image stage and the experiment's students): the order-``n`` Bezier path, the target (the
        secant on the ``distill_steps`` grid), and ``t`` on the N-step grid ``{0, 1/N, ...}`` or
        uniform on [0, 1] when ``distill_steps`` is ``None``."""
        self._check_target()
        steps = self.distill_steps
        return FlowConfig(
            path=BezierPath(self.order),
            target=self.target,
            time_sampler=distill_times(steps) if steps else None,
            grid_steps=steps if self.target == "secant" else None,
        )

    def _check_one_step_guide(self) -> None:
        if self.placement != "control":
            raise ValueError(
                "guide_state='one-step' is the teacher's full step X0 + v(X0, 0), its state at "
                "s = 1: only placement='control' can use it (a curve cannot interpolate a point "
                "at s = 1 other than X1)"
            )
        if self.guide_times is not None:
            raise ValueError(
                "guide_times have no effect with guide_state='one-step' (every guide is the "
                "full step X0 + v(X0, 0)); leave guide_times unset"
            )

    def _check_target(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; known: {', '.join(TARGETS)}")
        if self.target == "secant" and self.distill_steps is None:
            raise ValueError(
                "the secant target is defined on an N-step grid: set distill_steps=N with it"
            )

    def validate(self, num_teachers: int | None = None) -> None:
        """Raise a clear error for any inconsistent option (before anything is trained); with
        ``num_teachers``, also check that the teachers fit the guides and ``endpoint_teacher``."""
        BezierPath(self.order)  # order >= 1
        guides = self.order - 1
        times = self.times()
        if len(times) != guides:
            raise ValueError(f"order {self.order} needs {guides} guide time(s), got {len(times)}")
        self._check_options()
        if num_teachers is not None:
            self._check_teachers(num_teachers, guides)

    def _check_teachers(self, num_teachers: int, guides: int) -> None:
        if num_teachers < 1:
            raise ValueError("Bezier distillation needs at least one teacher")
        if guides and num_teachers not in (1, guides):
            raise ValueError(
                f"{guides} guide(s) cannot come from {num_teachers} teachers: give one teacher for "
                f"all guides or exactly one per guide"
            )
        if not 0 <= self.endpoint_teacher < num_teachers:
            raise ValueError(
                f"endpoint_teacher {self.endpoint_teacher} is not one of the "
                f"{num_teachers} teacher(s)"
            )

    def _check_options(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; known: {', '.join(ENDPOINTS)}")
        if self.placement not in GUIDE_PLACEMENTS:
            raise ValueError(
                f"unknown guide placement {self.placement!r}; known: {', '.join(GUIDE_PLACEMENTS)}"
            )
        if self.guide_state not in GUIDE_STATES:
            raise ValueError(
                f"unknown guide state {self.guide_state!r}; known: {', '.join(GUIDE_STATES)}"
            )
        if self.guide_state == "one-step":
            self._check_one_step_guide()
        self._check_target()
        if self.distill_steps is not None:
            distill_times(self.distill_steps)
        if self.n_pairs < 1 or self.teacher_steps < 1:
            raise ValueError(
                f"n_pairs and teacher_steps must be >= 1, got n_pairs={self.n_pairs}, "
                f"teacher_steps={self.teacher_steps}"
            )
        check_init(self.init)


@torch.no_grad()
def teacher_state(
    teacher: nn.Module, x0: Tensor, s: float, *, how: GuideState = "euler", steps: int = 100
) -> Tensor:
    """The teacher's state at time ``s`` on its trajectory from ``x0`` (a guide's raw state).

    - ``euler``: one Euler step, ``x0 + s v(x0, 0)``;
    - ``ode``: its ODE solution at ``s`` (``round(steps * s)`` Euler steps, at least one);
    - ``one-step``: one full step, ``x0 + v(x0, 0)`` (the state at s = 1; ``s`` is not used).
    """
    if how not in GUIDE_STATES:
        raise ValueError(f"unknown guide state {how!r}; known: {', '.join(GUIDE_STATES)}")
    zero = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    if how == "one-step":
        return x0 + teacher(x0, zero)
    if how == "euler":
        return x0 + s * teacher(x0, zero)
    return solve_ode(teacher, x0, steps=max(1, round(steps * s)), t_end=s).x


def make_bezier_pairs(
    teachers: Sequence[nn.Module],
    source: Sampler,
    target: Sampler,
    cfg: BezierDistillConfig,
    *,
    progress: bool = False,
) -> PairPool:
    """Generate ``cfg.n_pairs`` pairs with their guides, once (seeded by ``cfg.pair_seed``)."""
    teachers = list(teachers)
    cfg.validate(len(teachers))
    for tch in teachers:
        tch.eval()
    main = teachers[cfg.endpoint_teacher]
    coupling_options: dict[str, Any] = {
        "n_pairs": cfg.n_pairs,
        "steps": cfg.teacher_steps,
        "method": cfg.teacher_solver,
        "seed": cfg.pair_seed,
        "progress": progress,
    }
    if cfg.endpoint == "data":
        x0, x1 = DataAnchoredCoupling(main, target, **coupling_options).pairs.astuple()
    elif cfg.endpoint == "teacher":
        x0, x1 = ReflowCoupling(main, source, **coupling_options).pairs.astuple()
    else:
        g = torch.Generator().manual_seed(cfg.pair_seed)
        x0, x1 = source.sample(cfg.n_pairs, g), target.sample(cfg.n_pairs, g)
    return PairPool(Pairs(x0, x1, bezier_guides(teachers, x0, x1, cfg)))


@torch.no_grad()
def bezier_guides(
    teachers: Sequence[nn.Module], x0: Tensor, x1: Tensor, cfg: BezierDistillConfig
) -> tuple[Tensor, ...]:
    """The guides ``P_1 .. P_{n-1}`` of the pairs ``(x0, x1)``: teacher ``i``'s state at ``s_i``
    (:func:`teacher_state`, ``cfg.guide_state``) placed by ``cfg.placement`` (one teacher for
    all guides, or one per guide). The one place guides are made from a config."""
    times = cfg.times()
    teachers = list(teachers)
    guide_teachers = teachers if len(teachers) == len(times) else [teachers[0]] * len(times)
    states = [
        teacher_state(tch, x0, s, how=cfg.guide_state, steps=cfg.teacher_steps)
        for tch, s in zip(guide_teachers, times, strict=True)
    ]
    return place_guides(states, times, x0, x1, cfg.placement)


def bezier_distill(
    teachers: Sequence[nn.Module],
    source: Sampler,
    target: Sampler,
    train: TrainConfig,
    bezier: BezierDistillConfig | None = None,
    *,
    progress: bool = False,
    resume_from: str | Path | None = None,
    checkpoint_metadata: dict[str, Any] | None = None,
) -> RecipeResult:
    """Build the Bezier pairs once (``make_bezier_pairs``), then train a student on the Bezier
    path's regression target: ``min_theta E || v_theta(B(t), t) - target(t) ||^2``.

    ``resume_from`` continues an interrupted training run from its state; ``checkpoint_metadata``
    goes into every checkpoint of the run. The result's ``pairs`` are the pairs with their guides.
    """
    check_recipe_args("bezier_distill", train, bezier, BezierDistillConfig, "bezier")
    bezier = bezier if bezier is not None else BezierDistillConfig()
    pool = make_bezier_pairs(teachers, source, target, bezier, progress=progress)
    student = student_from(teachers[bezier.endpoint_teacher], bezier.init, seed=train.seed)
    return train_flow(
        student,
        pool,
        train,
        bezier.flow(),
        resume_from=resume_from,
        checkpoint_metadata=checkpoint_metadata,
    )
