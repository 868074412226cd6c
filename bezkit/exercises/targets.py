"""Implement-and-train checks for lessons 03, 04 and 06: a secant target and two distillation losses.

- ``secant_target(points, t, steps) -> (d,)``: on the grid ``t_i = i / N`` the secant
  ``(B(t_{i+1}) - B(t_i)) / (t_{i+1} - t_i) = N (B(t_{i+1}) - B(t_i))`` of the grid interval that
  holds ``t`` (``i = floor(t N)``); ``N`` Euler steps along it visit ``B(t_1), ..., B(1)`` exactly;
- ``bezier_distill_loss(student, teacher, x0, x1, t) -> loss``: the quadratic Bezier curve with the
  control guide ``G = X0 + 1/2 v_teacher(X0, 0)`` (one Euler step of the teacher to ``s = 1/2``,
  no gradient to the teacher), ``B(t) = (1-t)^2 X0 + 2t(1-t) G + t^2 X1``, and the endpoint target:
  ``mean (v_student(B(t), t) - (X1 - B(t)) / (1 - t))^2``;
- ``bdense_loss(model, trajectory, K) -> loss``: B-DENSE without restarts (``METHODS.md`` section 4),
  ``(1/K) sum_j mean ||branch_j(Z_0, 0) - Z_{t_j}||^2`` with ``Z_{t_j} = trajectory[N j / K]`` and the
  branches from ``model(Z_0, 0, branches=True)`` (shape ``(n, K, d)``), which is
  :class:`bezkit.methods.BDenseLoss` with its default weights.

The loss checks call the student's code on the recording probes of
:mod:`bezkit.exercises.probes`, so they can say *where* the code evaluated a model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from bezkit.exercises.bezier import CHECK_CURVES, bezier_point, bezier_tangent, endpoint_target
from bezkit.exercises.probes import ProbeBranches, ProbeVelocity
from bezkit.exercises.result import CheckResult, as_array, attempt, fmt

__all__ = [
    "bdense_loss",
    "bezier_distill_loss",
    "check_bdense_loss",
    "check_bezier_distill_loss",
    "check_secant_target",
    "secant_target",
]


def secant_target(points: Tensor, t: float, steps: int) -> Tensor:
    """The reference: ``N (B(t_{i+1}) - B(t_i))`` with ``i = min(floor(t N), N - 1)``."""
    i = min(int(np.floor(t * steps)), steps - 1)
    return steps * (bezier_point(points, (i + 1) / steps) - bezier_point(points, i / steps))


def _secant_hint(points: Tensor, t: float, steps: int, value: np.ndarray) -> str:
    want = secant_target(points, t, steps).numpy()
    h = 1.0 / steps
    rounded = min(round(t * steps), steps - 1)
    candidates = {
        " That is the tangent B'(t); the secant is the chord of the grid interval.": bezier_tangent(
            points, t
        ),
        " That is the endpoint target (X1 - B(t)) / (1 - t), not the grid secant.": endpoint_target(
            points, t
        ),
        " That is 1/N of the secant: divide B(t_{i+1}) - B(t_i) by t_{i+1} - t_i = 1/N.": want
        / steps,
        " You used the interval [t, t + h]; use the grid interval [t_i, t_{i+1}] that holds t, "
        "t_i = floor(t N) / N.": (bezier_point(points, t + h) - bezier_point(points, t)) / h,
        " You rounded t N to the nearest grid point; use the interval that holds t, i = floor(t N).": (
            steps
            * (bezier_point(points, (rounded + 1) / steps) - bezier_point(points, rounded * h))
        ),
    }
    for hint, candidate in candidates.items():
        if np.allclose(value, np.asarray(candidate, dtype=np.float64), atol=1e-6):
            return hint
    return ""


def check_secant_target(fn: Callable[[Tensor, float, int], Tensor]) -> CheckResult:
    """Check ``fn(points, t, steps)`` on a quadratic and a cubic, N = 2 and 4, several ``t``."""
    name = "3.4 secant target"
    for points in CHECK_CURVES:
        p = torch.tensor(points, dtype=torch.float64)
        for steps in (2, 4):
            for t in (0.0, 0.3, 0.55, 0.9):
                got = attempt(name, fn, p.clone(), t, steps)
                if isinstance(got, CheckResult):
                    return got
                value = as_array(got, (2,))
                if isinstance(value, str):
                    return CheckResult.fail(name, f"at t = {t}, N = {steps} {value}.")
                want = secant_target(p, t, steps).numpy()
                if np.allclose(value, want, atol=1e-6):
                    continue
                order = len(points) - 1
                return CheckResult.fail(
                    name,
                    f"on the order-{order} curve at t = {t} with N = {steps} you returned "
                    f"{fmt(value)}, expected {fmt(want)}.{_secant_hint(p, t, steps, value)}",
                )
    return CheckResult.ok(
        name,
        "the secants match on a quadratic and a cubic for N = 2 and 4: N Euler steps along them "
        "visit B(1/N), ..., B(1) exactly.",
    )


def _curve(x0: Tensor, g: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    s = t[:, None]
    return (1 - s) ** 2 * x0 + 2 * s * (1 - s) * g + s**2 * x1


def bezier_distill_loss(
    student: nn.Module, teacher: nn.Module, x0: Tensor, x1: Tensor, t: Tensor
) -> Tensor:
    """The reference quadratic Bezier distillation loss (control guide, endpoint target)."""
    with torch.no_grad():
        guide = x0 + 0.5 * teacher(x0, torch.zeros_like(t))
    b = _curve(x0, guide, x1, t)
    return (student(b, t) - (x1 - b) / (1 - t)[:, None]).pow(2).mean()


def _loss_value(name: str, got: object) -> float | CheckResult:
    if isinstance(got, Tensor) and got.numel() == 1:
        return float(got.detach())
    if isinstance(got, float | int):
        return float(got)
    return CheckResult.fail(name, f"it returned {type(got).__name__}: return the loss, one number.")


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=1e-9))


def _guide_hint(student: ProbeVelocity, teacher: ProbeVelocity, x0: Tensor, x1: Tensor,
                t: Tensor) -> str:  # fmt: skip
    """Where the student's loss went wrong before the target: the teacher call and the curve."""
    if not teacher.calls:
        return " The guide comes from the teacher: G = X0 + 1/2 v_teacher(X0, 0)."
    tx, ts = teacher.calls[0]
    if not _same(tx, x0) or not torch.all(ts == 0):
        return " Call the teacher once, at X0 and t = 0: model(x0, zeros)."
    if not student.calls:
        return " Your loss never called the student."
    with torch.no_grad():
        v = ProbeVelocity(seed=5)(x0, torch.zeros_like(t))
    seen = student.calls[-1][0]
    guides = {
        " The guide is a point, G = X0 + 1/2 v(X0, 0), not the velocity v(X0, 0).": v,
        " One Euler step to s = 1/2: G = X0 + 1/2 v(X0, 0), not a full step X0 + v.": x0 + v,
    }
    for hint, g in guides.items():
        if _same(seen, _curve(x0, g, x1, t)):
            return hint
    if _same(seen, (1 - t)[:, None] * x0 + t[:, None] * x1):
        return " That is the straight line: put the guide G in the curve B(t)."
    if not _same(seen, _curve(x0, x0 + 0.5 * v, x1, t)):
        return " The student was not called at B(t) = (1-t)^2 X0 + 2t(1-t) G + t^2 X1."
    return ""


def check_bezier_distill_loss(
    fn: Callable[[nn.Module, nn.Module, Tensor, Tensor, Tensor], Tensor],
) -> CheckResult:
    """Check ``fn(student, teacher, x0, x1, t)`` on probe velocities (the teacher's one Euler step
    is known in closed form); the teacher must get no gradient."""
    name = "4.4 Bezier distillation loss"
    g = torch.Generator().manual_seed(6)
    x0 = torch.randn(8, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(8, 2, generator=g, dtype=torch.float64) + 2.0
    t = 0.9 * torch.rand(8, generator=g, dtype=torch.float64)
    student, teacher = ProbeVelocity(seed=1), ProbeVelocity(seed=5)
    got = attempt(name, fn, student, teacher, x0.clone(), x1.clone(), t.clone())
    if isinstance(got, CheckResult):
        return got
    value = _loss_value(name, got)
    if isinstance(value, CheckResult):
        return value
    want = float(
        bezier_distill_loss(ProbeVelocity(seed=1), ProbeVelocity(seed=5), x0, x1, t).detach()
    )
    hint = _guide_hint(student, teacher, x0, x1, t)
    if hint or not np.isclose(value, want, rtol=1e-6):
        if not hint:
            with torch.no_grad():
                guide = x0 + 0.5 * ProbeVelocity(seed=5)(x0, torch.zeros_like(t))
                b, s = _curve(x0, guide, x1, t), t[:, None]
                tangent = 2 * (1 - s) * (guide - x0) + 2 * s * (x1 - guide)
                tangent_loss = float((ProbeVelocity(seed=1)(b, t) - tangent).pow(2).mean())
            if np.isclose(value, tangent_loss, rtol=1e-6):
                hint = (
                    " That is the tangent target B'(t); this student regresses the endpoint "
                    "target (X1 - B(t)) / (1 - t)."
                )
        return CheckResult.fail(name, f"your loss is {value:.4f}, expected {want:.4f}.{hint}")
    if not isinstance(got, Tensor) or not got.requires_grad:
        return CheckResult.fail(
            name, "the value is right; return it as a tensor connected to the student (no .item())."
        )
    got.backward()
    if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in teacher.parameters()):
        return CheckResult.fail(
            name,
            "the value is right, but backward() reaches the teacher: compute the guide under "
            "torch.no_grad() (the teacher is fixed; only the student trains).",
        )
    return CheckResult.ok(
        name, f"the loss {value:.4f} matches: guide from one teacher step, endpoint target."
    )


def bdense_loss(model: nn.Module, trajectory: Tensor, num_branches: int) -> Tensor:
    """The reference B-DENSE loss without restarts (default weights ``1 / K``)."""
    steps = trajectory.shape[0] - 1
    z0 = trajectory[0]
    out = model(z0, torch.zeros(z0.shape[0], dtype=z0.dtype), branches=True)
    rows = [steps * j // num_branches for j in range(1, num_branches + 1)]
    return (out - trajectory[rows].transpose(0, 1)).pow(2).mean()


def _bdense_hint(model: ProbeBranches, trajectory: Tensor, k: int, value: float) -> str:
    if not model.calls:
        return " Your loss never called the model."
    x, s = model.calls[-1]
    if not _same(x, trajectory[0]) or not torch.all(s == 0):
        return " Without restarts every branch starts from Z_0 at s = 0: model(z0, zeros, branches=True)."
    steps = trajectory.shape[0] - 1
    probe = ProbeBranches(k, seed=k)
    with torch.no_grad():
        out = probe(trajectory[0], torch.zeros(trajectory.shape[1], dtype=trajectory.dtype),
                    branches=True)  # fmt: skip
    want = float((out - trajectory[[steps * j // k for j in range(1, k + 1)]].transpose(0, 1))
                 .pow(2).mean())  # fmt: skip
    earlier = trajectory[[steps * (j - 1) // k for j in range(1, k + 1)]].transpose(0, 1)
    candidates = {
        " Branch j targets Z_{t_j} = trajectory[N j / K] for j = 1..K: yours were one branch early "
        "(Z_0 is the input, not a target).": float((out - earlier).pow(2).mean()),
        " That is plain one-step distillation (branch K against Z_1 only): supervise every "
        "branch.": float((out[:, -1] - trajectory[-1]).pow(2).mean()),
        " You summed over the K branches: take their mean (weights 1/K).": want * k,
    }
    return next((h for h, v in candidates.items() if np.isclose(value, v, rtol=1e-6)), "")


def check_bdense_loss(fn: Callable[[nn.Module, Tensor, int], Tensor]) -> CheckResult:
    """Check ``fn(model, trajectory, K)`` for K = 2 and 4 on a seeded 8-step trajectory."""
    name = "6.3 B-DENSE loss"
    g = torch.Generator().manual_seed(9)
    trajectory = torch.cumsum(torch.randn(9, 5, 2, generator=g, dtype=torch.float64), dim=0)
    for k in (2, 4):
        model = ProbeBranches(k, seed=k)
        got = attempt(name, fn, model, trajectory.clone(), k)
        if isinstance(got, CheckResult):
            return got
        value = _loss_value(name, got)
        if isinstance(value, CheckResult):
            return value
        want = float(bdense_loss(ProbeBranches(k, seed=k), trajectory, k).detach())
        if not np.isclose(value, want, rtol=1e-6):
            hint = _bdense_hint(model, trajectory, k, value)
            return CheckResult.fail(
                name, f"for K = {k} your loss is {value:.4f}, expected {want:.4f}.{hint}"
            )
        if not isinstance(got, Tensor) or not got.requires_grad:
            return CheckResult.fail(
                name, "the value is right; return it as a tensor connected to the model."
            )
    return CheckResult.ok(name, "K = 2 and 4 match: every branch against its teacher state.")
