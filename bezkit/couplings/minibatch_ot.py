"""Minibatch OT coupling (OT-CFM, Tong et al.): pair each batch by optimal transport.

``exact``: draw ``n`` sources and ``n`` targets, pair them by the exact OT permutation (no duplicates).
``sinkhorn``: draw ``n`` pairs ``(i, j)`` with probability proportional to the entropic plan.
"""

from __future__ import annotations

import numpy as np
import torch

from bezkit.couplings.ot_plan import exact_ot_permutation, sinkhorn_plan
from bezkit.couplings.pairs import Pairs
from bezkit.data.toy2d import Sampler

__all__ = ["MinibatchOTCoupling"]


class MinibatchOTCoupling:
    """Each batch of ``n`` independent draws re-paired by optimal transport (OT-CFM).

    ``method="exact"``: ``x1`` is permuted by
    ``sigma = argmin_sigma sum_i ||x0_i - x1_sigma(i)||^2`` (``solver``: ``"emd"`` or
    ``"hungarian"``). ``method="sinkhorn"``: ``n`` index pairs drawn with replacement from the
    entropic plan ``argmin_pi <pi, C / mean(C)> - reg H(pi)`` (pairs may repeat).
    """

    def __init__(
        self,
        source: Sampler,
        target: Sampler,
        *,
        method: str = "exact",
        solver: str = "emd",
        reg: float = 0.05,
    ) -> None:
        if method not in ("exact", "sinkhorn"):
            raise ValueError(f"unknown minibatch OT method {method!r}; use 'exact' or 'sinkhorn'")
        self.source, self.target = source, target
        self.method, self.solver, self.reg = method, solver, reg

    def sample(self, n: int, generator: torch.Generator | None = None) -> Pairs:
        """Draw ``n`` sources and ``n`` targets independently, then pair them by OT."""
        x0 = self.source.sample(n, generator)
        x1 = self.target.sample(n, generator)
        if self.method == "exact":
            return Pairs(x0, x1[exact_ot_permutation(x0, x1, solver=self.solver)])
        plan = torch.from_numpy(np.ascontiguousarray(sinkhorn_plan(x0, x1, reg=self.reg)))
        flat = torch.multinomial(plan.flatten(), n, replacement=True, generator=generator)
        return Pairs(x0[flat // n], x1[flat % n])

    def __repr__(self) -> str:
        return f"MinibatchOTCoupling({self.source!r} -> {self.target!r}, method={self.method!r})"
