"""A reading of torchcfm's ``ExactOptimalTransportConditionalFlowMatcher`` (Tong et al., OT-CFM).

Used by ``vs_torchcfm.py`` only when the real ``torchcfm`` package cannot be imported (its full
``pip install`` pulls another torch and CUDA wheels; see ``README.md`` for a ``--no-deps`` install).
Written from the public torchcfm 1.0.7 source, not copied; when both are importable
``vs_torchcfm.py --check-reference`` checks that they return identical tensors under the same seeds.

The algorithm, per call ``sample_location_and_conditional_flow(x0, x1)`` with batches of size n:

1. cost ``M_ij = ||x0_i - x1_j||^2`` from ``torch.cdist`` in the dtype of the inputs (float32 here);
2. exact plan ``pi = ot.emd(unif(n), unif(n), M)`` with POT's defaults (``numItermax=100000``);
   a plan summing to ~0 (numerical failure) is replaced by the uniform plan;
3. n index pairs drawn **with replacement** from the flattened plan, ``np.random.choice(n*n, p=pi/sum
   pi)``, using numpy's global random state; ``(i, j) = divmod(k, n)``, ``x0 <- x0[i]``,
   ``x1 <- x1[j]`` (so some pairs repeat and some points are dropped, unlike bezkit's permutation);
4. ``t ~ U[0, 1)`` from torch's global generator, ``eps ~ N(0, I)`` (drawn even when sigma = 0),
   ``x_t = t x1 + (1 - t) x0 + sigma eps``, ``u_t = x1 - x0``; returns ``(t, x_t, u_t)``.
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from torch import Tensor

__all__ = ["ReferenceExactOTCFM"]


class ReferenceExactOTCFM:
    """Exact-OT conditional flow matching as torchcfm computes it (``sigma = 0`` by default)."""

    def __init__(self, sigma: float = 0.0) -> None:
        self.sigma = sigma

    @staticmethod
    def plan(x0: Tensor, x1: Tensor) -> np.ndarray:
        """The exact plan ``ot.emd(unif(n), unif(m), ||x0_i - x1_j||^2)``; uniform if it fails."""
        n, m = x0.shape[0], x1.shape[0]
        cost = torch.cdist(x0.reshape(n, -1), x1.reshape(m, -1)) ** 2
        pi = ot.emd(ot.unif(n), ot.unif(m), cost.detach().cpu().numpy())
        if abs(pi.sum()) < 1e-8:  # torchcfm falls back to the uniform plan (with a warning)
            pi = np.full_like(pi, 1.0 / pi.size)
        return pi

    def sample_plan(self, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
        """``n`` index pairs drawn with replacement from the plan (numpy's global state)."""
        pi = self.plan(x0, x1)
        p = pi.ravel() / pi.sum()
        k = np.random.choice(pi.size, size=x0.shape[0], replace=True, p=p)
        i, j = np.divmod(k, pi.shape[1])
        return x0[i], x1[j]

    def sample_location_and_conditional_flow(
        self, x0: Tensor, x1: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(t, x_t, u_t)`` on OT-paired points: ``t ~ U[0, 1]``,
        ``x_t = t x1 + (1 - t) x0 + sigma eps`` and ``u_t = x1 - x0``."""
        x0, x1 = self.sample_plan(x0, x1)
        t = torch.rand(x0.shape[0]).type_as(x0)
        eps = torch.randn_like(x0)
        tt = t.reshape(-1, *([1] * (x0.dim() - 1)))
        xt = tt * x1 + (1 - tt) * x0 + self.sigma * eps
        return t, xt, x1 - x0
