"""A K-branch output head for B-DENSE (METHODS.md section 4).

The wrapped network outputs ``K * C`` channels: one velocity block ``u_j`` per branch. Branch ``j``
predicts the teacher's trajectory state at the absolute time ``t_j`` from the input state at time
``s < t_j``, parameterised as a displacement:

    branch_j(x, s) = x + (t_j - s) u_j(x, s),   0 < t_1 < ... < t_K = 1.

Called as a velocity field, ``model(x, s)`` returns the last branch's ``u_K``: one Euler step of the
remaining time lands on branch K, so the ODE solvers sample B-DENSE students like any flow. With K = 1
this is exactly the plain distillation student ``T(z) = z + v(z, 0)``. Few-step sampling
(:func:`bezkit.solvers.sample_bdense`, or :meth:`BranchedVelocity.sample`) restarts from branch
outputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bezkit.solvers.branched import sample_bdense

__all__ = ["BranchedVelocity", "branch_times"]


def branch_times(k: int) -> tuple[float, ...]:
    """Evenly spaced branch times ``t_j = j / K``, j = 1..K."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"number of branches K must be an int >= 1, got {k!r}")
    return tuple(j / k for j in range(1, k + 1))


class BranchedVelocity(nn.Module):
    """A K-branch student: ``net`` outputs ``K`` velocity blocks ``u_j`` along ``channel_dim``;
    ``branch_j(x, s) = x + (t_j - s) u_j(x, s)``; called as ``model(x, s)`` it is the velocity
    ``u_K`` (``branches=True``: every branch output). ``times``: the ``t_j`` (default ``j / K``)."""

    def __init__(
        self,
        net: nn.Module,
        num_branches: int,
        *,
        channel_dim: int = 1,
        times: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.num_branches = num_branches
        self.channel_dim = channel_dim
        t = branch_times(num_branches) if times is None else tuple(float(v) for v in times)
        if len(t) != num_branches:
            raise ValueError(f"{num_branches} branches need {num_branches} times, got {len(t)}")
        if any(b <= a for a, b in itertools.pairwise(t)) or t[0] <= 0 or abs(t[-1] - 1) > 1e-9:
            raise ValueError(f"branch times must increase in (0, 1] and end at 1, got {t}")
        self.times = t

    def velocities(self, x: Tensor, t: Tensor) -> Tensor:
        """``u_j(x, s)`` for all branches, shape ``(n, K, *data_shape)``."""
        out = self.net(x, t)
        c = x.shape[self.channel_dim]
        if out.shape[self.channel_dim] != self.num_branches * c:
            raise ValueError(
                f"the wrapped network must output {self.num_branches} x {c} channels, got "
                f"{out.shape[self.channel_dim]}"
            )
        chunks = torch.chunk(out, self.num_branches, dim=self.channel_dim)
        return torch.stack(chunks, dim=1)

    def branches(self, x: Tensor, t: Tensor) -> Tensor:
        """``branch_j(x, s) = x + (t_j - s) u_j(x, s)``, shape ``(n, K, *data_shape)``."""
        u = self.velocities(x, t)
        tj = torch.tensor(self.times, dtype=x.dtype, device=x.device)
        scale = tj[None, :] - t.to(x.dtype)[:, None]
        return x[:, None] + scale.reshape(*scale.shape, *([1] * (x.ndim - 1))) * u

    @torch.no_grad()
    def sample(self, x: Tensor, steps: int = 1) -> Tensor:
        """Few-step sampling that restarts from branch outputs: ``sample_bdense(self, x,
        steps=steps).x`` (see ``bezkit/solvers/branched.py``; ``steps`` must divide K)."""
        return sample_bdense(self, x, steps=steps).x

    def forward(self, x: Tensor, t: Tensor, *, branches: bool = False) -> Tensor:
        """The velocity ``u_K(x, s)`` of the last branch, shape ``(n, *data_shape)``; with
        ``branches=True`` every branch output ``branch_j(x, s)``, shape ``(n, K, *data_shape)``.

        Losses reach the branches through ``forward`` (``model(x, s, branches=True)``) so that
        wrappers which only know ``forward`` (``DistributedDataParallel``, which synchronises the
        gradients there, and ``torch.compile``) see the call."""
        if branches:
            return self.branches(x, t)
        return self.velocities(x, t)[:, -1]
