"""Small trainable models for the implement-and-train checks: they record how they were called.

- :class:`ProbeVelocity`: ``v(x, t) = x W + t b + c`` (float64 parameters, seeded), the
  ``model(x, t)`` convention of every bezkit velocity;
- :class:`ProbeBranches`: ``K`` branches ``branch_j(x, s) = x + (t_j - s)(x W_j + c_j)``,
  ``t_j = j / K``, called as ``model(x, s, branches=True)`` like
  :class:`bezkit.models.branched.BranchedVelocity` (shape ``(n, K, d)``).

Both record every call (the inputs, detached) so that a check can tell *where* the student's code
evaluated the model, not only what came out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ProbeBranches", "ProbeVelocity"]


def _times(x: Tensor, t: Tensor | float) -> Tensor:
    """``t`` as a ``(n,)`` tensor of ``x``'s dtype; a clear error for any other shape."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"model(x, t) takes t of shape (n,) = ({x.shape[0]},), got {tuple(t.shape)}"
        )
    return t


class ProbeVelocity(nn.Module):
    """``v(x, t) = x W + t b + c`` with seeded float64 parameters; records ``(x, t)`` of each call."""

    def __init__(self, dim: int = 2, *, seed: int = 0, scale: float = 0.3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(scale * torch.randn(dim, dim, generator=g, dtype=torch.float64))
        self.time = nn.Parameter(scale * torch.randn(dim, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(scale * torch.randn(dim, generator=g, dtype=torch.float64))
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``x W + t b + c``; ``t`` must have shape ``(n,)``."""
        t = _times(x, t)
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return x @ self.weight + t[:, None] * self.time + self.bias


class ProbeBranches(nn.Module):
    """``K`` linear branches ``x + (t_j - s)(x W_j + c_j)``; records ``(x, s)`` of each call."""

    def __init__(self, num_branches: int, dim: int = 2, *, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.num_branches = num_branches
        shape = (num_branches, dim, dim)
        self.weight = nn.Parameter(0.3 * torch.randn(*shape, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(num_branches, dim, generator=g, dtype=torch.float64))
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor, s: Tensor, *, branches: bool = False) -> Tensor:
        """Every branch's state ``(n, K, d)`` with ``branches=True``; else branch K's velocity."""
        s = _times(x, s)
        self.calls.append((x.detach().clone(), s.detach().clone()))
        times = torch.arange(1, self.num_branches + 1, dtype=x.dtype) / self.num_branches
        u = torch.einsum("nd,kde->nke", x, self.weight) + self.bias[None]
        out = x[:, None] + (times[None, :, None] - s[:, None, None]) * u
        return out if branches else u[:, -1]
