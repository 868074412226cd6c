"""Exact and entropic optimal-transport plans between two equal-size point clouds (POT).

With uniform weights ``1/n`` on both sides and squared Euclidean cost
``C_ij = ||x0_i - x1_j||^2``, the exact plan is ``1/n`` times a permutation matrix (Birkhoff), so the
OT pairing is a permutation ``sigma`` minimising ``sum_i C_{i sigma(i)}``: no pair is duplicated or
dropped. The entropic (Sinkhorn) plan is dense; pairs are then drawn from it.
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torch import Tensor

__all__ = ["OT_SOLVERS", "exact_ot_permutation", "sinkhorn_plan", "squared_cost"]

OT_SOLVERS: tuple[str, ...] = ("emd", "hungarian")


# Up to this many features per point the cost is computed by scipy (see ``squared_cost``).
_SCIPY_COST_MAX_DIM = 16


def squared_cost(x0: Tensor, x1: Tensor) -> np.ndarray:
    """``C_ij = ||x0_i - x1_j||^2`` as a float64 numpy array (rows flattened).

    Low-dimensional points (at most 16 features: the 2D toys, small tabular data) go through
    ``scipy.spatial.distance.cdist``: single-threaded, about 4x faster than ``torch.cdist`` here,
    and exact per entry (``sum_k (a_ik - b_jk)^2``, no ``|a|^2 + |b|^2 - 2ab`` cancellation). Above
    all, it starts no torch/OpenMP worker team: minibatch OT runs in the trainer's prefetch thread
    (``TrainConfig.prefetch``) while the model trains, and ``torch.set_num_threads`` is process-wide,
    so a parallel ``torch.cdist`` there competes for the cores with the model's own threads.
    Higher-dimensional points (images) keep the multi-threaded ``torch.cdist``.
    """
    a = x0.detach().reshape(x0.shape[0], -1)
    b = x1.detach().reshape(x1.shape[0], -1)
    if a.shape[1] <= _SCIPY_COST_MAX_DIM:
        return cdist(a.cpu().double().numpy(), b.cpu().double().numpy(), "sqeuclidean")
    return torch.cdist(a.double(), b.double()).pow(2).cpu().numpy()


def exact_ot_permutation(x0: Tensor, x1: Tensor, *, solver: str = "emd") -> Tensor:
    """Index ``sigma`` such that ``(x0[i], x1[sigma[i]])`` is an exact OT pairing."""
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(
            f"exact OT pairing needs equal batch sizes, got {x0.shape[0]} and {x1.shape[0]}"
        )
    cost = squared_cost(x0, x1)
    n = cost.shape[0]
    if solver == "hungarian":
        _, cols = linear_sum_assignment(cost)
        return torch.from_numpy(cols.astype(np.int64))
    if solver != "emd":
        raise ValueError(f"unknown OT solver {solver!r}; known: {', '.join(OT_SOLVERS)}")
    w = np.full(n, 1.0 / n)
    plan = ot.emd(w, w, cost, numItermax=max(100_000, 50 * n * n))
    cols = plan.argmax(axis=1)
    if len(np.unique(cols)) != n:  # degenerate ties; fall back to the assignment solver
        _, cols = linear_sum_assignment(cost)
    return torch.from_numpy(np.asarray(cols, dtype=np.int64))


def sinkhorn_plan(x0: Tensor, x1: Tensor, *, reg: float = 0.05) -> np.ndarray:
    """Entropic OT plan; ``reg`` is relative to the mean cost (so it is scale free)."""
    if reg <= 0:
        raise ValueError(f"Sinkhorn regularisation must be > 0, got {reg}")
    cost = squared_cost(x0, x1)
    n, m = cost.shape
    plan = ot.sinkhorn(np.full(n, 1.0 / n), np.full(m, 1.0 / m), cost / cost.mean(), reg)
    if not np.isfinite(plan).all() or plan.sum() <= 0:
        raise FloatingPointError("Sinkhorn plan is not finite; increase reg")
    return plan
