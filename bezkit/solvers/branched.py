"""B-DENSE's own few-step sampler: restarts from branch outputs (METHODS.md sections 4 and 8).

A B-DENSE student has K branches; branch ``j`` maps the state ``x`` at time ``s`` to its prediction
of the teacher's state at the *absolute* time ``t_j`` (``0 < t_1 < ... < t_K = 1``):

    branch_j(x, s) = x + (t_j - s) u_j(x, s).

A *restart* treats a branch output as the state at its branch time and runs the student again from
there. With N steps (N dividing K, stride ``m = K / N``) the sampler hops through the branch times
``s_0 = 0, s_i = t_{i m}``:

    x_0 = X0,    x_{i+1} = branch_{(i+1) m}(x_i, s_i),    i = 0 .. N-1,

so step i moves from time ``s_i`` to ``s_{i+1}`` with the branch whose absolute time is the next
hop time, given the current state *and its time*. ``N = 1`` reads branch K from ``X0`` (the
one-step sample); ``N = K`` uses every branch in turn. Inputs at ``s > 0`` are the states that
``BDenseLoss(restarts=True)`` trains on (``Z_{t_1}, ..., Z_{t_{K-1}}`` as inputs at their own times),
so this sampler is the reading that matches restart training; a student trained at ``s = 0`` only
(the default) has never seen those inputs, and its few-step samples measure that gap. Each step is
one network evaluation (NFE = N).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from bezkit.solvers.ode import ODESolution

__all__ = ["BranchedModel", "bdense_hop_times", "sample_bdense"]


class BranchedModel(Protocol):
    """What the sampler needs: ``branches(x, s) -> (n, K, *d)`` and the branch ``times``."""

    times: tuple[float, ...]

    def branches(self, x: Tensor, t: Tensor) -> Tensor:
        """Every branch output ``branch_j(x, s)``, shape ``(n, K, *d)``."""


def bdense_hop_times(times: tuple[float, ...], steps: int) -> tuple[int, ...]:
    """The branch indices ``(m - 1, 2m - 1, ..., K - 1)`` (0-based) an N-step sample uses, m = K/N."""
    k = len(times)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1 or k % steps:
        raise ValueError(
            f"B-DENSE few-step sampling: steps must divide the number of branches {k}, "
            f"got {steps!r}"
        )
    stride = k // steps
    return tuple((i + 1) * stride - 1 for i in range(steps))


@torch.no_grad()
def sample_bdense(
    model: BranchedModel, x0: Tensor, *, steps: int = 1, record: bool = False
) -> ODESolution:
    """Sample a B-DENSE student in ``steps`` restarts from branch outputs (module docstring).

    Works for a ``BranchedVelocity`` and for an ``EnsembleVelocity`` of them (seed-blocked ``x0``).
    Returns the final state, the hop times ``(0, s_1, ..., 1)``, the states at those times when
    ``record`` is set, and ``nfe = steps``.
    """
    if not hasattr(model, "branches") or not hasattr(model, "times"):
        raise TypeError(
            f"sample_bdense needs a branched model (branches(x, s) and times), got "
            f"{type(model).__name__}"
        )
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.ndim < 2:
        raise ValueError("x0 must be a floating tensor of shape (n, *data_shape)")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 contains NaN or inf")
    times = tuple(float(v) for v in model.times)
    hops = bdense_hop_times(times, steps)
    x, s = x0, 0.0
    hop_times, states = [0.0], [x0] if record else None
    for j in hops:
        t = torch.full((x.shape[0],), s, dtype=x.dtype, device=x.device)
        x = model.branches(x, t)[:, j]
        s = times[j]
        hop_times.append(s)
        if states is not None:
            states.append(x)
    trajectory = torch.stack(states) if states is not None else None
    return ODESolution(x=x, times=torch.tensor(hop_times), trajectory=trajectory, nfe=len(hops))
