"""Checks for lessons 01 and 02: the linear path, an Euler sampler, one reflow round's pairs.

- ``linear_path(x0, x1, t) -> (x_t, velocity)``: ``X_t = (1 - t) X0 + t X1`` and its velocity
  ``X1 - X0`` for batches ``x0, x1`` of shape ``(n, d)`` and ``t`` of shape ``(n,)``;
- ``euler_sample(model, x0, steps) -> x``: ``Z_{t+h} = Z_t + h v(Z_t, t)`` with ``h = 1/N``, the
  model called as ``model(x, t)`` with ``t`` of shape ``(n,)`` at ``t_i = i/N``;
- ``reflow_pairs(model, x0, steps) -> (x0, x1)``: the pairs ``(X0, Z_1(X0))`` of the next reflow
  round, ``Z_1`` from ``steps`` Euler steps of the model.

The Euler checks use velocity fields whose Euler solution is known in closed form, count the
model calls and look at the times the model was called with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from bezkit.exercises.result import CheckResult, as_array, attempt, fmt

__all__ = ["TimeVelocity", "check_euler_sample", "check_linear_path", "check_reflow_pairs"]


class TimeVelocity(nn.Module):
    """``v(x, t) = a x + t b``: Euler with N steps has a closed form, and every call is recorded."""

    def __init__(self, a: float = -0.5, b: tuple[float, float] = (1.0, 2.0)) -> None:
        super().__init__()
        self.a: float = a
        self.b: Tensor
        self.register_buffer("b", torch.tensor(b, dtype=torch.float64))
        self.calls: list[Tensor] = []
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``v(x, t) = a x + t b``, recording each ``t`` (and ``x``) it is called with; ``t`` must
        have shape ``(n,)``."""
        self.calls.append(torch.as_tensor(t).detach().clone())
        self.inputs.append(torch.as_tensor(x).detach().clone())
        t = torch.as_tensor(t, dtype=x.dtype)
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"model(x, t) takes t of shape (n,) = ({x.shape[0]},), got {tuple(t.shape)}"
            )
        return self.a * x + t[:, None] * self.b.to(x.dtype)

    def euler(
        self, x0: Tensor, steps: int, *, offset: float = 0.0, size: float | None = None
    ) -> Tensor:
        """The Euler solution with times ``(i + offset) / steps`` and step ``size`` (default
        ``1 / steps``; ``size=1`` is the sampler that forgot ``h``)."""
        x, h = x0.clone(), 1.0 / steps
        step = h if size is None else size
        for i in range(steps):
            t = torch.full((x.shape[0],), (i + offset) * h, dtype=x.dtype)
            x = x + step * (self.a * x + t[:, None] * self.b.to(x.dtype))
        return x


def _batch(seed: int, n: int = 6) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0, x1 = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g)
    return x0, x1, torch.rand(n, generator=g)


def _close(a: np.ndarray, b: Tensor | np.ndarray) -> bool:
    return bool(np.allclose(a, np.asarray(b, dtype=np.float64), atol=1e-5, rtol=1e-5))


def _two_batches(
    name: str, got: object, missing: str, labels: tuple[str, str], *, note: str = ""
) -> CheckResult | tuple[np.ndarray, np.ndarray]:
    """``got`` as two batches of 6 points in 2D, or the failure that says which one is wrong
    (``missing``: what to return when ``got`` is not a pair)."""
    if not isinstance(got, tuple | list) or len(got) != 2:
        return CheckResult.fail(name, missing)
    arrays = []
    for label, value in zip(labels, got, strict=True):
        array = as_array(value, (6, 2))
        if isinstance(array, str):
            return CheckResult.fail(name, f"for {label} {array}{note}.")
        arrays.append(array)
    return arrays[0], arrays[1]


def check_linear_path(fn: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]) -> CheckResult:
    """Check ``fn(x0, x1, t) -> (x_t, velocity)`` on a seeded batch of 6 pairs."""
    name = "1.1 linear path"
    x0, x1, t = _batch(0)
    got = attempt(name, fn, x0.clone(), x1.clone(), t.clone())
    if isinstance(got, CheckResult):
        return got
    pair = _two_batches(
        name,
        got,
        "return two things: the point X_t and the velocity.",
        ("X_t", "the velocity"),
        note=" (a batch of 6 points in 2D)",
    )
    if isinstance(pair, CheckResult):
        return pair
    xt, v = pair
    want_xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    if not _close(xt, want_xt):
        hint = ""
        if _close(xt, t[:, None] * x0 + (1 - t)[:, None] * x1):
            hint = " The weights are swapped: at t = 0 the path must be at X0."
        return CheckResult.fail(
            name, f"X_t of pair 0 is {fmt(xt[0])}, expected {fmt(want_xt[0])}.{hint}"
        )
    if not _close(v, x1 - x0):
        hint = " The sign is flipped: the path moves from X0 to X1." if _close(v, x0 - x1) else ""
        return CheckResult.fail(
            name,
            f"the velocity of pair 0 is {fmt(v[0])}, expected X1 - X0 = {fmt(x1[0] - x0[0])}.{hint}",
        )
    return CheckResult.ok(name, "X_t and dX_t/dt = X1 - X0 match on a batch of 6 pairs.")


def check_euler_sample(fn: Callable[[nn.Module, Tensor, int], Tensor]) -> CheckResult:
    """Check ``fn(model, x0, steps)`` against the closed-form Euler solution of ``a x + t b``."""
    name = "1.2 Euler sampler"
    x0 = _batch(1)[0].double()
    for steps in (1, 4):
        model = TimeVelocity()
        got = attempt(name, fn, model, x0.clone(), steps)
        if isinstance(got, CheckResult):
            return got
        value = as_array(got, (6, 2))
        if isinstance(value, str):
            return CheckResult.fail(name, f"with {steps} step(s) {value}.")
        if len(model.calls) != steps:
            return CheckResult.fail(
                name,
                f"with {steps} step(s) you called the model {len(model.calls)} times; Euler calls "
                "it once per step (NFE = steps).",
            )
        want = model.euler(x0, steps)
        if _close(value, want):
            continue
        hint = _euler_hint(model, x0, value, steps)
        return CheckResult.fail(
            name,
            f"with {steps} steps point 0 lands on {fmt(value[0])}, expected {fmt(want[0])}.{hint}",
        )
    return CheckResult.ok(name, "1 and 4 Euler steps match, one model call per step.")


def _euler_hint(model: TimeVelocity, x0: Tensor, value: np.ndarray, steps: int) -> str:
    """The likely mistake of a wrong Euler sampler, from where and when it called the model."""
    times = [round(float(c.flatten()[0]), 3) for c in model.calls if c.numel()]
    right_times = times == [round(i / steps, 3) for i in range(steps)]
    if _close(value, model.euler(x0, steps, offset=1.0)):
        return " You used the time at the end of each step, (i + 1)/N; use i/N."
    if steps > 1 and _close(value, model.euler(x0, 1)):
        return " That is one step of size 1: use h = 1/N and N steps."
    if _close(value, model.euler(x0, steps, size=1.0)):
        return " Each step added the whole velocity v: multiply it by the step size h = 1/N."
    later = model.inputs[1:]
    if later and all(_close(x.numpy(), x0) for x in later):
        return (
            " You evaluated the model at x0 at every step: call it at the current state, "
            "x <- x + h v(x, t_i)."
        )
    if not right_times:
        return f" You called the model at t = {times}; Euler uses the start of each step, i/N."
    return " The times i/N are right; check the update x <- x + h v(x, t_i) with h = 1/N."


def check_reflow_pairs(
    fn: Callable[[nn.Module, Tensor, int], tuple[Tensor, Tensor]],
) -> CheckResult:
    """Check ``fn(model, x0, steps) -> (x0, Z_1(x0))`` on a closed-form velocity field."""
    name = "2.2 reflow pairs"
    x0 = _batch(2)[0].double()
    model = TimeVelocity()
    got = attempt(name, fn, model, x0.clone(), 8)
    if isinstance(got, CheckResult):
        return got
    pair = _two_batches(
        name, got, "return the pair (x0, x1) of the next round's coupling.", ("x0", "x1")
    )
    if isinstance(pair, CheckResult):
        return pair
    a, b = pair
    if not _close(a, x0):
        return CheckResult.fail(
            name, "the first element must be the source points x0 themselves, unchanged."
        )
    want = model.euler(x0, 8)
    if _close(b, want):
        return CheckResult.ok(name, "the pairs are (X0, Z_1(X0)) from 8 Euler steps.")
    hint = ""
    with torch.no_grad():
        v0 = TimeVelocity()(x0, torch.zeros(6, dtype=x0.dtype))
    if _close(b, v0):
        hint = " That is the velocity v(X0, 0), not where the flow ends."
    elif _close(b, model.euler(x0, 1)):
        hint = " That is one Euler step: integrate with the given number of steps."
    return CheckResult.fail(
        name, f"x1 of pair 0 is {fmt(b[0])}, expected the flow's end Z_1 = {fmt(want[0])}.{hint}"
    )
