"""Implement-and-train checks for lessons 01 and 02: the loss, one training step, a crossing count.

- ``fm_loss(model, x0, x1, t) -> loss``: the flow-matching loss of one batch on the linear path,
  ``mean over the batch and the coordinates of (v(X_t, t) - (X1 - X0))^2`` with
  ``X_t = (1 - t) X0 + t X1``, a tensor that ``backward()`` can reach the model through (what
  :class:`bezkit.training.FlowMatchingLoss` computes for given ``t``);
- ``train_step(model, optimizer, x0, x1, generator) -> float``: draw
  ``t = torch.rand(n, generator=generator)``, compute the loss, ``zero_grad``, ``backward``,
  ``step``; return the loss before the step as a float;
- ``count_crossings(x0, x1) -> int``: how many pairs ``i < j`` of segments ``X0_i -> X1_i`` cross
  (:func:`bezkit.metrics.coupling_crossings`).

The checks run the student's code on :class:`bezkit.exercises.probes.ProbeVelocity` (a seeded linear
velocity that records where it was called), compare with the formula, and for ``train_step`` also
train a probe for 150 steps on a problem whose answer is known (a constant velocity): its error
must fall, with a tolerance no CPU's rounding comes near.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from bezkit.exercises.probes import ProbeVelocity
from bezkit.exercises.result import CheckResult, attempt, fmt
from bezkit.metrics import coupling_crossings, crossing_mask

__all__ = ["check_count_crossings", "check_fm_loss", "check_train_step", "fm_loss"]


def fm_loss(model: nn.Module, x0: Tensor, x1: Tensor, t: Tensor) -> Tensor:
    """The reference: ``((model(X_t, t) - (X1 - X0)) ** 2).mean()``, ``X_t = (1 - t) X0 + t X1``."""
    xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    return (model(xt, t) - (x1 - x0)).pow(2).mean()


def _batch(seed: int, n: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64) + 2.0
    return x0, x1, torch.rand(n, generator=g, dtype=torch.float64)


def _scalar(value: object) -> float | str:
    """``value`` as a float, or a string saying why it is not one number."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            return f"it returned a tensor of shape {tuple(value.shape)}, not one number"
        return float(value.detach())
    try:
        return float(value)  # type: ignore[arg-type]  # any number-like answer
    except (TypeError, ValueError):
        return f"it returned {type(value).__name__}, not a number"


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=1e-9, rtol=1e-9))


def _where_called(model: ProbeVelocity, x0: Tensor, x1: Tensor, t: Tensor) -> str:
    """A hint from where the model was evaluated, or "" when it was at ``X_t``."""
    if not model.calls:
        return " Your loss never called the model: evaluate v(X_t, t)."
    x, tt = model.calls[-1]
    xt = (1 - t)[:, None] * x0 + t[:, None] * x1
    if _same(x, xt) and _same(tt, t):
        return ""
    if _same(x, x0):
        return " You evaluated the model at X0; evaluate it at X_t = (1 - t) X0 + t X1."
    if _same(x, x1):
        return " You evaluated the model at X1; evaluate it at X_t = (1 - t) X0 + t X1."
    if _same(x, t[:, None] * x0 + (1 - t)[:, None] * x1):
        return " The weights of X_t are swapped: at t = 0 the path is at X0."
    if _same(x, xt):
        return " X_t is right, but call the model with the same t: model(x_t, t)."
    return " The model was not called at X_t = (1 - t) X0 + t X1."


def check_fm_loss(fn: Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``fn(model, x0, x1, t)`` against the flow-matching loss on a probe velocity."""
    name = "1.3 flow-matching loss"
    x0, x1, t = _batch(0)
    model = ProbeVelocity(seed=1)
    got = attempt(name, fn, model, x0.clone(), x1.clone(), t.clone())
    if isinstance(got, CheckResult):
        return got
    value = _scalar(got)
    if isinstance(value, str):
        return CheckResult.fail(name, f"{value}: average the squared errors to one number.")
    with torch.no_grad():
        want = float(fm_loss(ProbeVelocity(seed=1), x0, x1, t))
    where = _where_called(model, x0, x1, t)
    if where:
        return CheckResult.fail(name, f"your loss is {value:.4f}, expected {want:.4f}.{where}")
    if not np.isclose(value, want, rtol=1e-6):
        with torch.no_grad():
            xt = (1 - t)[:, None] * x0 + t[:, None] * x1
            err = ProbeVelocity(seed=1)(xt, t) - (x1 - x0)
            flipped = float((err + 2 * (x1 - x0)).pow(2).mean())
        hints = {
            flipped: " The target is X1 - X0 (the path moves from X0 to X1), not X0 - X1.",
            float(err.abs().mean()): " Square the errors (that is the mean absolute error).",
            want * 2: " You summed over the 2 coordinates: take the mean over them too.",
            want * 2 * len(t): " You summed over the batch and the coordinates: take the mean.",
            want * len(t): " You summed over the batch: take the mean.",
        }
        hint = next((h for v, h in hints.items() if np.isclose(value, v, rtol=1e-6)), "")
        return CheckResult.fail(name, f"your loss is {value:.4f}, expected {want:.4f}.{hint}")
    if not isinstance(got, Tensor) or not got.requires_grad:
        return CheckResult.fail(
            name,
            "the value is right, but return the loss as a tensor connected to the model (no "
            ".item(), no .detach(), no torch.no_grad()): train_step calls backward() on it.",
        )
    return CheckResult.ok(name, f"the loss {value:.4f} matches, and gradients reach the model.")


def _sgd_step(model: ProbeVelocity, x0: Tensor, x1: Tensor, t: Tensor, lr: float) -> Tensor:
    """The parameters after one reference SGD step, flattened; and the model's loss before it."""
    loss = fm_loss(model, x0, x1, t)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return torch.cat([(p - lr * g).detach().flatten() for p, g in zip(model.parameters(), grads)])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _flat(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _drawn_times(model: ProbeVelocity, n: int) -> Tensor | None:
    """The ``t`` the student's step used, when it is ``torch.rand(n, generator=generator)`` (in
    float32 or in float64) of the generator passed in; else None."""
    for dtype in (torch.float32, torch.float64):
        t = torch.rand(n, generator=torch.Generator().manual_seed(7), dtype=dtype).double()
        if model.calls and _same(model.calls[-1][1], t):
            return t
    return None


def _step_hint(
    model: ProbeVelocity, start: Tensor, x0: Tensor, x1: Tensor, lr: float, want_t: Tensor
) -> str:
    """Why one step of the student's ``train_step`` moved the parameters wrongly."""
    if not model.calls:
        return " Your step never evaluated the model: compute the batch's loss with your fm_loss."
    if _drawn_times(model, len(x0)) is None:
        return (
            " Draw t with torch.rand(n, generator=generator) (the generator passed in, once per "
            "step), so that a seeded run is reproducible."
        )
    after = _flat(model)
    if torch.allclose(after, start):
        grads = [p.grad for p in model.parameters()]
        if all(g is None or torch.all(g == 1.0) for g in grads):
            return (
                " The parameters did not move and no gradient was computed: call loss.backward()."
            )
        return " The parameters did not move: call optimizer.step() after loss.backward()."
    if torch.allclose(after, start - lr, atol=1e-9):  # moved by the stale gradient of ones only
        return (
            " The step used a gradient left over from before, none of this batch: call "
            "optimizer.zero_grad(), then loss.backward(), then optimizer.step()."
        )
    probe = ProbeVelocity(seed=1)
    with torch.no_grad():
        for p, q in zip(probe.parameters(), _unflatten(start, model), strict=True):
            p.copy_(q)
    want = _sgd_step(probe, x0, x1, want_t, lr)
    if torch.allclose(after, want - lr, atol=1e-9):  # the stale gradient of ones, added
        return (
            " The update includes a gradient left over from before: call optimizer.zero_grad() "
            "before loss.backward()."
        )
    if torch.allclose(after, 2 * start - want, atol=1e-9):
        return " The parameters moved uphill: minimise the loss (do not negate it)."
    return " Compute the loss of that batch with your fm_loss, then zero_grad, backward, step."


def _unflatten(flat: Tensor, model: nn.Module) -> list[Tensor]:
    out, i = [], 0
    for p in model.parameters():
        out.append(flat[i : i + p.numel()].reshape(p.shape))
        i += p.numel()
    return out


def check_train_step(
    fn: Callable[[nn.Module, torch.optim.Optimizer, Tensor, Tensor, torch.Generator], float],
) -> CheckResult:
    """Check one ``fn(model, optimizer, x0, x1, generator)`` against an SGD step, then train with it.

    The probe's gradients are pre-filled with ones (a stale gradient) so that a missing
    ``zero_grad`` shows; the training run fits a constant velocity ``X1 - X0 = (2, -1)``.
    """
    name = "1.4 one training step"
    lr = 0.1
    x0, x1, _ = _batch(3)
    model = ProbeVelocity(seed=1)
    start = _flat(model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    got = attempt(name, fn, model, optimizer, x0, x1, torch.Generator().manual_seed(7))
    if isinstance(got, CheckResult):
        return got
    value = _scalar(got)
    if isinstance(value, str):
        return CheckResult.fail(name, f"{value}: return the loss of the batch (loss.item()).")
    drawn = _drawn_times(model, len(x0))
    want_t = drawn if drawn is not None else torch.rand(len(x0), generator=_gen(7)).double()
    want = _sgd_step(ProbeVelocity(seed=1), x0, x1, want_t, lr)
    if drawn is None or not torch.allclose(_flat(model), want, atol=1e-9):
        hint = _step_hint(model, start, x0, x1, lr, want_t)
        return CheckResult.fail(
            name, f"after one SGD step (lr = {lr}) the parameters differ from the reference.{hint}"
        )
    with torch.no_grad():
        loss_before = float(fm_loss(ProbeVelocity(seed=1), x0, x1, want_t))
    if not np.isclose(value, loss_before, rtol=1e-6):
        return CheckResult.fail(
            name,
            f"the step is right, but it returned {value:.4f}; return the batch's loss before the "
            f"step, {loss_before:.4f}.",
        )
    return _train_constant(name, fn)


def _train_constant(name: str, fn: Callable[..., object]) -> CheckResult:
    """150 steps of ``fn`` on pairs with ``X1 - X0 = (2, -1)``: the velocity must learn it."""
    target = torch.tensor([2.0, -1.0], dtype=torch.float64)
    model = ProbeVelocity(seed=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    g, data = torch.Generator().manual_seed(11), torch.Generator().manual_seed(12)
    losses = []
    for _ in range(150):
        x0 = torch.randn(64, 2, generator=data, dtype=torch.float64)
        got = attempt(name, fn, model, optimizer, x0, x0 + target, g)
        if isinstance(got, CheckResult):
            return got
        losses.append(_scalar(got))
    with torch.no_grad():
        x = torch.randn(256, 2, generator=data, dtype=torch.float64)
        v = model(x, torch.rand(256, generator=data, dtype=torch.float64))
    error = float((v - target).norm(dim=1).mean())
    if any(isinstance(v, str) for v in losses) or error > 0.05:
        return CheckResult.fail(
            name, f"after 150 steps the velocity is off the constant (2, -1) by {error:.3f}."
        )
    return CheckResult.ok(
        name,
        "one step matches SGD exactly, and 150 of your steps on pairs with a constant velocity "
        "learned it (within 0.05).",
    )


def check_count_crossings(fn: Callable[[Tensor, Tensor], int]) -> CheckResult:
    """Check ``fn(x0, x1)`` on an X, parallel segments and 30 seeded random segments."""
    name = "2.3 counting crossing pairs"
    g = torch.Generator().manual_seed(4)
    cases = [
        ("30 random segments", torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g)),
        ("an X (1 crossing pair)", torch.tensor([[-1.0, -1.0], [-1.0, 1.0]]),
         torch.tensor([[1.0, 1.0], [1.0, -1.0]])),
        ("three parallel segments (none)", torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0]]),
         torch.tensor([[2.0, 0.0], [2.0, 1.0], [2.0, 2.0]])),
    ]  # fmt: skip
    for label, x0, x1 in cases:
        got = attempt(name, fn, x0.clone(), x1.clone())
        if isinstance(got, CheckResult):
            return got
        value = _scalar(got)
        if isinstance(value, str):
            return CheckResult.fail(name, f"for {label} {value}.")
        want = coupling_crossings(x0, x1).pairs
        if value == want:
            continue
        hint = ""
        if value == 2 * want:
            hint = " Each pair was counted twice: count i < j only."
        elif value == int(crossing_mask(x0, x1).sum()):
            hint = (
                " That is the number of segments that cross at least one other (the red ones in "
                "the figures), not the number of crossing pairs."
            )
        elif value == want + len(x0):
            hint = " A segment does not cross itself: skip j = i."
        return CheckResult.fail(
            name, f"for {label} you counted {fmt(value, 0)}, expected {want}.{hint}"
        )
    return CheckResult.ok(name, "an X, parallel segments and 30 random segments counted right.")
