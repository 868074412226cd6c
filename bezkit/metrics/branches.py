"""B-DENSE: how far each branch of a student lands from the teacher's state at its time."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bezkit.arrays import to_numpy

__all__ = ["branch_errors", "teacher_branch_states"]


def teacher_branch_states(teacher_states: Any, k: int | None) -> np.ndarray:
    """Teacher states at ``t_1..t_K`` as ``(K, n, 2)``; a leading ``Z_0`` (K + 1 states) is
    dropped when ``k`` says there are K branches."""
    if isinstance(teacher_states, torch.Tensor | np.ndarray):
        arr = to_numpy(teacher_states)
    else:
        arr = np.stack([to_numpy(s) for s in teacher_states])
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise ValueError(f"teacher states must have shape (K, n, 2), got {arr.shape}")
    if k is not None and arr.shape[0] == k + 1:
        arr = arr[1:]
    if k is not None and arr.shape[0] != k:
        raise ValueError(f"a model with {k} branches needs {k} teacher states, got {arr.shape[0]}")
    return arr


@torch.no_grad()
def branch_errors(model: Any, x0: Any, teacher_states: Any, s: float = 0.0) -> np.ndarray:
    """Per-branch mean squared error ``E ||branch_j(x0, s) - Z_{t_j}||^2``, shape ``(K,)``, of a
    B-DENSE student (:class:`bezkit.models.BranchedVelocity`) against the teacher's states at the
    branch times (``(K, n, 2)``, or ``K + 1`` states starting with ``Z_0``)."""
    x = torch.as_tensor(to_numpy(x0), dtype=torch.float32)
    states = teacher_branch_states(teacher_states, model.num_branches)
    model.eval()
    out = model.branches(x, torch.full((x.shape[0],), float(s))).double().numpy()  # (n, K, 2)
    diff = out - np.transpose(states, (1, 0, 2))
    return (diff**2).sum(axis=-1).mean(axis=0)
