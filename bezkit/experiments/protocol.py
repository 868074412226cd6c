"""The fair-comparison protocol as a table of student methods (METHODS.md section 6).

Every student of round ``k`` is fine-tuned from the k-RF (the same model), for the same number of
optimiser steps, on pools of the same number of pairs. What differs is one thing at a time:

- **time distribution**: a one-step student is trained at ``t = 0`` only, an N-step student on its
  grid ``{0, 1/N, ..., (N-1)/N}``; uniform-t students (``t ~ U[0, 1]``) are kept as separately
  named ``*-uniform`` methods and are never compared with a one-step student as if fair;
- **pairs**: ``reflow`` (fresh source ``X0``, the teacher's forward ``X1``), ``forward`` (the very
  same reflow pairs, with a guide: the Bezier students on the pairs, seeds and grid of
  ``rf-distill-N``), ``anchored`` (real
  held-in ``X1``, the teacher's reverse-ODE ``X0``, with the quadratic guide), ``cubic`` (the same
  real endpoint, guides from two teachers: the k-RF and OT-CFM), ``trajectory`` (the teacher's
  states at ``j / B`` for B-DENSE);
- **curve and target**: linear (order 1), quadratic or cubic Bezier; ``tangent`` ``B'(t)``,
  ``endpoint`` ``(X1 - B(t)) / (1 - t)`` or, for N-step students only, the grid-consistent
  ``secant`` ``N (B(t_{i+1}) - B(t_i))`` (``*-secant`` methods: in the default and the full
  table, each with its linear twin and plain distillation at equal NFE).

With the endpoint target at ``t = 0`` every curve gives ``X1 - X0``: a one-step Bezier student *is*
the linear one, so the curve is compared through 2- and 4-step students (N-step grid, equal NFE)
and through the uniform-t variants; the table has no one-step Bezier method.

The forward-pair students separate three things on identical pairs: ``rf-distill-N`` (the line),
``bezier-forward-N-secant`` (a quadratic through the pair with the Euler guide
``X0 + v(X0, 0) / 2``: the curve) and ``bezier-state-N-secant`` (the quadratic that passes through
the teacher's own ODE state at ``s = 1/2``: at N = 2 this is distillation of the teacher's
trajectory in two halves, so it tells the curve from partial trajectory distillation);
``bdense-restart`` with its restart sampler is the trajectory method at equal NFE beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bezkit.methods.bezier_distillation import BezierDistillConfig, GuideState
from bezkit.paths.guides import GuidePlacement
from bezkit.paths.time_sampling import DiscreteTime, TimeSampler, UniformTime, distill_times

__all__ = [
    "BASELINE_METHODS",
    "DEFAULT_STUDENTS",
    "EXTRA_STUDENTS",
    "FORWARD_STUDENTS",
    "FULL_STUDENTS",
    "QUICK_STUDENTS",
    "SECANT_STUDENTS",
    "STUDENTS",
    "PairKind",
    "StudentSpec",
    "at_every_budget",
    "paired_baseline",
    "student",
]

PairKind = Literal["reflow", "forward", "anchored", "cubic", "trajectory"]

#: Flows trained once per seed on the pair (not per round), reported beside the students.
BASELINE_METHODS: tuple[str, ...] = ("otcfm", "full-ot")


@dataclass(frozen=True)
class StudentSpec:
    """One student method of the per-round comparison.

    ``steps`` is the N of an N-step student (trained on the N-step grid, evaluated at N Euler
    steps = N NFE); ``steps=None`` means uniform ``t`` (evaluated at every step count, reported at
    one step). ``linear_twin`` names the linear student on the same pairs (the one-difference
    comparison of a Bezier curve)."""

    name: str
    pairs: PairKind
    order: int = 1
    target: Literal["tangent", "endpoint", "secant"] = "tangent"
    steps: int | None = 1
    guide: GuideState = "euler"
    placement: GuidePlacement = "control"
    restarts: bool = False
    linear_twin: str | None = None
    about: str = ""

    @property
    def nfe(self) -> int:
        """The step count the student is made for (one for uniform-t students)."""
        return 1 if self.steps is None else self.steps

    def time_sampler(self) -> TimeSampler:
        """``t = 0`` (one step), the N-step grid, or ``U[0, 1]`` (``*-uniform`` methods)."""
        return UniformTime() if self.steps is None else distill_times(self.steps)

    def distill_config(
        self, *, n_pairs: int = 10_000, teacher_steps: int = 100, pair_seed: int = 0
    ) -> BezierDistillConfig:
        """This student as a :class:`~bezkit.methods.bezier_distillation.BezierDistillConfig` (the one
        description of a Bezier student's path, guides, target and time sampler; its
        :meth:`~bezkit.methods.bezier_distillation.BezierDistillConfig.flow` is the student's loss).
        Linear students are order 1; ``reflow`` / ``forward`` pairs have the teacher's endpoint,
        the others a real one. B-DENSE has no such description (a ``ValueError``)."""
        if self.pairs == "trajectory":
            raise ValueError(f"{self.name} is a B-DENSE student: it has no Bezier path")
        return BezierDistillConfig(
            order=self.order,
            placement=self.placement,
            guide_state=self.guide,
            endpoint="teacher" if self.pairs in ("reflow", "forward") else "data",
            target=self.target,
            distill_steps=self.steps,
            n_pairs=n_pairs,
            teacher_steps=teacher_steps,
            pair_seed=pair_seed,
        )

    def allowed_times(self, num_branches: int = 4) -> tuple[float, ...] | None:
        """The exact training times this student may see (``None``: any in [0, 1]). B-DENSE
        starts at ``s = 0`` only, or at ``{0, 1/B, ..., (B-1)/B}`` when trained for restarts."""
        if self.pairs == "trajectory":
            return tuple(j / num_branches for j in range(num_branches if self.restarts else 1))
        sampler = self.time_sampler()
        return tuple(sampler.values.tolist()) if isinstance(sampler, DiscreteTime) else None


def _secant(n: int) -> StudentSpec:
    return StudentSpec(
        f"bezier-quadratic-{n}-secant",
        "anchored",
        order=2,
        target="secant",
        steps=n,
        linear_twin=f"anchored-distill-{n}",
        about=f"quadratic, real endpoint, secant target N (B(t_(i+1)) - B(t_i)), {n}-step grid",
    )


def _forward(n: int) -> list[StudentSpec]:
    base = f"rf-distill-{n}"
    return [
        StudentSpec(
            f"bezier-forward-{n}-secant",
            "forward",
            order=2,
            target="secant",
            steps=n,
            linear_twin=base,
            about=f"quadratic on {base}'s own pairs, guide X0 + v(X0, 0)/2, secant target",
        ),
        StudentSpec(
            f"bezier-state-{n}-secant",
            "forward",
            order=2,
            target="secant",
            steps=n,
            guide="ode",
            placement="interpolate",
            linear_twin=base,
            about=f"quadratic through the teacher's ODE state at s = 1/2, {base}'s pairs, secant",
        ),
    ]


def _few_step(n: int) -> list[StudentSpec]:
    lin = f"anchored-distill-{n}"
    return [
        StudentSpec(f"rf-distill-{n}", "reflow", steps=n, about=f"k-RF distilled, {n}-step grid"),
        StudentSpec(lin, "anchored", steps=n, about=f"linear, real endpoint, {n}-step grid"),
        StudentSpec(
            f"bezier-quadratic-{n}-tangent",
            "anchored",
            order=2,
            target="tangent",
            steps=n,
            linear_twin=lin,
            about=f"quadratic, real endpoint, tangent target, {n}-step grid",
        ),
        StudentSpec(
            f"bezier-quadratic-{n}-endpoint",
            "anchored",
            order=2,
            target="endpoint",
            steps=n,
            linear_twin=lin,
            about=f"quadratic, real endpoint, endpoint target, {n}-step grid",
        ),
    ]


_ALL: list[StudentSpec] = [
    StudentSpec("rf-distill", "reflow", about="k-RF distilled at t = 0 (Liu et al.)"),
    StudentSpec("anchored-distill", "anchored", about="linear, real endpoint, t = 0"),
    StudentSpec("bdense", "trajectory", about="B-DENSE, 4 branches, s = 0"),
    StudentSpec(
        "anchored-distill-uniform",
        "anchored",
        steps=None,
        about="linear, real endpoint, t ~ U[0, 1]",
    ),
    StudentSpec(
        "bezier-quadratic-uniform",
        "anchored",
        order=2,
        target="endpoint",
        steps=None,
        linear_twin="anchored-distill-uniform",
        about="quadratic, real endpoint, endpoint target, t ~ U[0, 1]",
    ),
    StudentSpec(
        "bezier-cubic-uniform",
        "cubic",
        order=3,
        target="endpoint",
        steps=None,
        linear_twin="anchored-distill-uniform",
        about="cubic, guides from the k-RF and OT-CFM (multi-teacher), t ~ U[0, 1]",
    ),
    *_few_step(2),
    *_few_step(4),
    # readings that are more expensive or newer: in the full run
    StudentSpec(
        "bdense-restart",
        "trajectory",
        steps=None,
        restarts=True,
        about="B-DENSE trained for restarts (s in {0, 1/4, 2/4, 3/4}); restart sampler",
    ),
    StudentSpec(
        "bezier-quadratic-2-literal",
        "anchored",
        order=2,
        target="endpoint",
        steps=2,
        guide="one-step",
        linear_twin="anchored-distill-2",
        about="quadratic, literal guide X0 + v(X0, 0) (one full teacher step), 2-step grid",
    ),
    # the grid-consistent target (METHODS.md section 9)
    _secant(2),
    _secant(4),
    # the same pairs as rf-distill-N: the curve, the teacher-state control (METHODS.md section 6)
    *_forward(2),
    *_forward(4),
]

#: Every student method by name.
STUDENTS: dict[str, StudentSpec] = {s.name: s for s in _ALL}

#: Students added by ``--full``.
EXTRA_STUDENTS: tuple[str, ...] = ("bdense-restart", "bezier-quadratic-2-literal")
#: The grid-consistent N-step Bezier students (``target="secant"``), in every table.
SECANT_STUDENTS: tuple[str, ...] = ("bezier-quadratic-2-secant", "bezier-quadratic-4-secant")
#: The students on ``rf-distill-N``'s own forward pairs, and B-DENSE with restarts at equal NFE.
FORWARD_STUDENTS: tuple[str, ...] = (
    "bezier-forward-2-secant",
    "bezier-state-2-secant",
    "bezier-forward-4-secant",
    "bezier-state-4-secant",
)
_FIRST: tuple[str, ...] = tuple(
    s.name for s in _ALL if s.name not in EXTRA_STUDENTS + SECANT_STUDENTS + FORWARD_STUDENTS
)
#: The students of ``bezkit experiment`` by default. Later additions come last: a method's
#: training seeds depend on its position, so adding them leaves every other method's seeds as
#: they were.
DEFAULT_STUDENTS: tuple[str, ...] = (
    _FIRST + SECANT_STUDENTS + FORWARD_STUDENTS + ("bdense-restart",)
)
#: The students of ``bezkit experiment --full`` (the same positions rule: additions last).
FULL_STUDENTS: tuple[str, ...] = _FIRST + EXTRA_STUDENTS + SECANT_STUDENTS + FORWARD_STUDENTS


#: The students of ``bezkit experiment --quick``: one of each kind of claim (the curve at 2 steps
#: on both kinds of pairs, the teacher-state control, B-DENSE with restarts, uniform t).
QUICK_STUDENTS: tuple[str, ...] = (
    "rf-distill",
    "anchored-distill-uniform",
    "bezier-quadratic-uniform",
    "rf-distill-2",
    "anchored-distill-2",
    "bezier-quadratic-2-endpoint",
    "bezier-quadratic-2-secant",
    "bezier-forward-2-secant",
    "bezier-state-2-secant",
    "bdense-restart",
)


def at_every_budget(name: str, methods: tuple[str, ...] | list[str]) -> bool:
    """Whether ``name`` is trained at every student budget when ``methods`` run: yes when it takes
    part in a claim (a Bezier student, B-DENSE with restarts, or the linear twin or plain
    distillation a Bezier student of ``methods`` is compared with); the one-step ``t = 0``
    students, compared in no claim, train at the first budget only."""
    spec = student(name)
    if spec.order > 1 or spec.restarts:
        return True
    for other in methods:
        o = student(other)
        if o.order > 1 and name in (o.linear_twin, paired_baseline(other)):
            return True
        if o.restarts and spec.pairs == "reflow" and spec.nfe > 1:
            return True
    return False


def student(name: str) -> StudentSpec:
    """The spec of a student method (clear error for an unknown name)."""
    if name not in STUDENTS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(STUDENTS)}")
    return STUDENTS[name]


def paired_baseline(name: str) -> str | None:
    """The plain k-RF distillation a student is compared with at equal NFE: ``rf-distill`` for
    one-step students, ``rf-distill-N`` for N-step ones; ``None`` for uniform-t students (plain
    distillation is trained at t = 0 or on the grid: comparing uniform-t with it is the confound
    of METHODS.md section 6; a uniform-t student is compared with uniform-t ones only)."""
    spec = student(name)
    if spec.steps is None and spec.pairs != "trajectory":
        return None
    return "rf-distill" if spec.nfe == 1 else f"rf-distill-{spec.nfe}"
