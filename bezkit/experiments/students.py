"""How each student method of :mod:`bezkit.experiments.protocol` is set up and sampled.

A student is a copy of its teacher (the k-RF; B-DENSE: the teacher with its output layer repeated
per branch), trained on one pool with one loss:

- linear / Bezier students: ``E || v(B(t), t) - target(t) ||^2`` with the spec's path order,
  target (the ``secant`` target on the spec's own N-step grid) and time sampler (``t = 0``, the
  N-step grid, or ``U[0, 1]`` for ``*-uniform``), all from the spec's
  :class:`~bezkit.methods.bezier_distillation.BezierDistillConfig` (``spec.distill_config().flow()``,
  the one place the recipe, the image stage and the experiment build them);
- B-DENSE: ``sum_j w_j || branch_j(Z_s, s) - Z_{t_j} ||^2`` with ``s = 0`` (or the branch grid
  when trained for restarts).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from bezkit.couplings.pairs import PairPool
from bezkit.experiments.pools import Pool, PoolMaker
from bezkit.experiments.protocol import StudentSpec
from bezkit.methods.bdense import BDenseLoss, branched_from_teacher
from bezkit.methods.flow import student_from
from bezkit.models.branched import BranchedVelocity
from bezkit.solvers.branched import sample_bdense
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import LossFn

__all__ = ["StudentSetup", "restart_samples", "student_loss", "student_setup"]


@dataclass
class StudentSetup:
    """What one seed's student trains on: the initial model, the pool and its generation cost."""

    model: nn.Module
    pool: PairPool
    source: Pool


def student_loss(spec: StudentSpec, *, num_branches: int = 4) -> LossFn:
    """The loss of a student method (the same object for every seed)."""
    if spec.pairs == "trajectory":
        return BDenseLoss(num_branches, restarts=spec.restarts)
    try:
        flow = spec.distill_config().flow()
    except ValueError as err:
        raise ValueError(f"{spec.name}: {err}") from None
    return FlowMatchingLoss(
        flow.path,
        target=flow.target,
        time_sampler=flow.time_sampler,
        grid_steps=flow.grid_steps,
    )


def student_setup(
    spec: StudentSpec,
    teacher: nn.Module,
    pools: PoolMaker,
    *,
    second_teacher: nn.Module | None = None,
    num_branches: int = 4,
) -> StudentSetup:
    """The initial student and the pool it trains on (pools shared through ``pools``)."""
    if spec.pairs == "trajectory":
        made = pools.trajectory(teacher)
        return StudentSetup(branched_from_teacher(teacher, num_branches), made.pool, made)
    model = student_from(teacher, "teacher")
    if spec.pairs == "reflow":
        made = pools.reflow(teacher)
        return StudentSetup(model, made.pool, made)
    if spec.pairs == "forward":
        cfg = spec.distill_config(
            n_pairs=pools.n_pairs, teacher_steps=pools.teacher_steps, pair_seed=pools.pair_seed
        )
        made = pools.forward(teacher, cfg)
        return StudentSetup(model, made.pool, made)
    if spec.pairs == "cubic":
        if second_teacher is None:
            raise ValueError(f"{spec.name} needs a second teacher (the OT-CFM flow)")
        made = pools.cubic(teacher, second_teacher)
        return StudentSetup(model, made.pool, made)
    made = pools.anchored(teacher, guide=spec.guide)
    return StudentSetup(model, made.pool if spec.order == 2 else made.linear(), made)


def restart_samples(model: nn.Module, x0: Tensor, steps: int) -> Tensor:
    """B-DENSE's own few-step sampler: hop through the branch times, restarting from the branch
    outputs (``steps`` must divide the number of branches)."""
    if not isinstance(model, BranchedVelocity):
        raise TypeError(f"the restart sampler needs a B-DENSE student, got {type(model).__name__}")
    return sample_bdense(model, x0, steps=steps).x
