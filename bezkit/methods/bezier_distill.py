"""Bezier distillation: bezkit's precise reading of the seed paper (METHODS.md section 4).

For each pair ``(X0, X1)`` a Bezier curve of order ``n`` is built with guides from teachers:

    B(t) = sum_i C(n, i) (1-t)^(n-i) t^i P_i,   P_0 = X0,  P_n = X1,  P_i = G_i (i = 1..n-1)

- guide ``i`` comes from teacher ``i`` (or one teacher for all): its state at time ``s_i`` along its
  trajectory from X0, by one Euler step ``Z = X0 + s_i v_i(X0, 0)`` (``guide_state="euler"``, the
  seed's "running a teacher one step") or by its ODE solution at ``s_i`` (``"ode"``); the state is
  placed as a ``control`` point or the curve is made to ``interpolate`` it (see ``paths/guides.py``);
- the endpoint is real data with ``X0 = ODE_teacher^-1(X1)`` (``endpoint="data"``, the seed's claim
  that a real endpoint stops error accumulation), the teacher's forward endpoint (``"teacher"``) or an
  independent draw (``"independent"``);
- the student regresses the ``tangent`` B'(t) or the one-step-friendly ``endpoint`` target
  ``(X1 - B(t)) / (1 - t)`` at ``t ~ U[0, 1]``, or on the N-step grid when ``distill_steps = N``.

Order 1 has no guides: with ``endpoint="teacher"`` it is exactly reflow training, and with
``distill_steps`` it is exactly k-RF distillation (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from bezkit.couplings.pairs import PairPool, Pairs
from bezkit.couplings.reflow import DataAnchoredCoupling, ReflowCoupling
from bezkit.data.toy2d import Sampler
from bezkit.methods.flow import Init, student_from, train_flow
from bezkit.paths.bezier import BezierPath
from bezkit.paths.guides import GuidePlacement, check_guide_times, place_guides
from bezkit.paths.targets import TargetKind
from bezkit.paths.time_sampling import distill_times
from bezkit.solvers.ode import solve_ode
from bezkit.training.config import TrainConfig
from bezkit.training.trainer import TrainResult

__all__ = ["BezierDistillConfig", "BezierDistillResult", "bezier_distill", "make_bezier_pairs"]

Endpoint = Literal["data", "teacher", "independent"]
ENDPOINTS = ("data", "teacher", "independent")


@dataclass(frozen=True)
class BezierDistillConfig:
    """Every choice of a Bezier distillation run (defaults: quadratic, data endpoint, control guide,
    endpoint target, uniform t)."""

    order: int = 2
    guide_times: tuple[float, ...] | None = None  # default: s_i = i / order
    placement: GuidePlacement = "control"
    guide_state: Literal["euler", "ode"] = "euler"
    endpoint: Endpoint = "data"
    endpoint_teacher: int = 0
    target: TargetKind = "endpoint"
    distill_steps: int | None = None
    n_pairs: int = 10_000
    teacher_steps: int = 100
    teacher_solver: str = "euler"
    init: Init = "teacher"
    pair_seed: int = 0
    extra: dict = field(default_factory=dict)

    def times(self) -> tuple[float, ...]:
        if self.guide_times is None:
            return tuple(i / self.order for i in range(1, self.order))
        return check_guide_times(self.guide_times)

    def validate(self, num_teachers: int) -> None:
        """Raise a clear error for any inconsistent option (before anything is trained)."""
        BezierPath(self.order)  # order >= 1
        guides = self.order - 1
        times = self.times()
        if len(times) != guides:
            raise ValueError(f"order {self.order} needs {guides} guide time(s), got {len(times)}")
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
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; known: {', '.join(ENDPOINTS)}")
        if self.placement not in ("control", "interpolate"):
            raise ValueError(f"unknown guide placement {self.placement!r}")
        if self.guide_state not in ("euler", "ode"):
            raise ValueError(f"unknown guide state {self.guide_state!r}; use 'euler' or 'ode'")
        if self.target not in ("tangent", "endpoint"):
            raise ValueError(f"unknown target {self.target!r}; use 'tangent' or 'endpoint'")
        if self.distill_steps is not None:
            distill_times(self.distill_steps)
        if self.n_pairs < 1 or self.teacher_steps < 1:
            raise ValueError("n_pairs and teacher_steps must be >= 1")


@dataclass
class BezierDistillResult:
    result: TrainResult
    pool: PairPool

    @property
    def model(self) -> nn.Module:
        return self.result.final_model


@torch.no_grad()
def _teacher_state(teacher: nn.Module, x0: Tensor, s: float, how: str, steps: int) -> Tensor:
    if how == "euler":
        return x0 + s * teacher(x0, torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device))
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
    run = dict(
        n_pairs=cfg.n_pairs,
        steps=cfg.teacher_steps,
        method=cfg.teacher_solver,
        seed=cfg.pair_seed,
        progress=progress,
    )
    if cfg.endpoint == "data":
        x0, x1 = DataAnchoredCoupling(main, target, **run).pairs.astuple()
    elif cfg.endpoint == "teacher":
        x0, x1 = ReflowCoupling(main, source, **run).pairs.astuple()
    else:
        g = torch.Generator().manual_seed(cfg.pair_seed)
        x0, x1 = source.sample(cfg.n_pairs, g), target.sample(cfg.n_pairs, g)
    times = cfg.times()
    guide_teachers = teachers if len(teachers) == len(times) else [teachers[0]] * len(times)
    states = [
        _teacher_state(tch, x0, s, cfg.guide_state, cfg.teacher_steps)
        for tch, s in zip(guide_teachers, times, strict=True)
    ]
    guides = place_guides(states, times, x0, x1, cfg.placement)
    return PairPool(Pairs(x0, x1, guides))


def bezier_distill(
    teachers: Sequence[nn.Module],
    source: Sampler,
    target: Sampler,
    config: TrainConfig,
    cfg: BezierDistillConfig | None = None,
    *,
    progress: bool = False,
    resume_from: str | Path | None = None,
) -> BezierDistillResult:
    """Build the Bezier pairs once, then train a student on the Bezier path's regression target
    (``resume_from``: continue an interrupted training run from its state)."""
    cfg = cfg or BezierDistillConfig()
    pool = make_bezier_pairs(teachers, source, target, cfg, progress=progress)
    student = student_from(teachers[cfg.endpoint_teacher], cfg.init, seed=config.seed)
    sampler = distill_times(cfg.distill_steps) if cfg.distill_steps else None
    result = train_flow(
        pool, student, config, path=BezierPath(cfg.order), target=cfg.target,
        time_sampler=sampler, resume_from=resume_from,
    )  # fmt: skip
    return BezierDistillResult(result=result, pool=pool)
