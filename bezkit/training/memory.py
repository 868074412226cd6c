"""Refuse a batch that cannot fit in memory, before the kernel kills the process silently.

``estimate_step_bytes`` is a deliberate over-estimate of one training step of the 2D MLP
(``bezkit.models.MLPVelocity``) on ``batch_size`` pairs:

    activations   batch * (hidden * depth + time_dim) * 4 bytes * 8   (forward values, their
                  gradients, AdamW and autograd temporaries)
    coupling      minibatch OT / Sinkhorn: batch^2 * 8 bytes * 4      (float64 cost matrix,
                  plan and the solver's copies)
    data          batch * dim * 4 bytes * 16                           (pairs, path points, targets)
    weights       parameters * 4 bytes * 6                             (weights, gradients, AdamW's
                  two moments, the EMA copy, a checkpoint's copy); parameters of the MLP:
                  (dim + time_dim + 1) * hidden + (depth - 1) * (hidden + 1) * hidden
                  + (hidden + 1) * dim
    full OT       full_ot_points^2 * 8 bytes * 4                       (one exact OT problem: float64
                  cost matrix, plan and the solver's copies)

``estimate_experiment_bytes`` adds what ``bezkit experiment`` keeps besides one training step:

    pairs         n_pairs * dim * 4 bytes * 64       (the cached pair pools of a round: X0, X1,
                  guides, B-DENSE states, and their copies)
    evaluation    n_eval * (n_projections * 8 * 4 + (many_steps + 1) * dim * 4 * 2)  (sliced W2's
                  float64 projections of both sides and their sort; a recorded trajectory)
    draws         eval_draws * n_eval * dim * 4 bytes * 16  (each draw's source, reference and
                  generated points)

A requested size above the available memory is refused, naming the option that dominates.

``check_fits_in_memory`` compares it with the memory the system reports as available
(``MemAvailable`` of ``/proc/meminfo``, else the physical memory) and raises
:class:`MemoryEstimateError` above it; where the system does not say, nothing is refused.
"""

from __future__ import annotations

import os

__all__ = [
    "MemoryEstimateError",
    "available_memory_bytes",
    "check_fits_in_memory",
    "estimate_experiment_bytes",
    "estimate_step_bytes",
    "largest_part",
    "mlp_parameters",
    "step_bytes_by_part",
]

PAIRWISE_COUPLINGS = ("minibatch-ot", "sinkhorn")


class MemoryEstimateError(MemoryError):
    """A requested run would need more memory than the machine has."""


def available_memory_bytes() -> int | None:
    """Memory available to a new allocation, in bytes (None if the system does not say)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def mlp_parameters(*, hidden: int, depth: int, dim: int = 2, time_dim: int = 64) -> int:
    """The parameter count of ``MLPVelocity(dim, hidden, depth, time_dim)`` (module docstring)."""
    return (dim + time_dim + 1) * hidden + (depth - 1) * (hidden + 1) * hidden + (hidden + 1) * dim


def step_bytes_by_part(
    *,
    batch_size: int,
    hidden: int,
    depth: int,
    coupling: str,
    dim: int = 2,
    time_dim: int = 64,
    full_ot_points: int = 0,
) -> dict[str, int]:
    """The parts of :func:`estimate_step_bytes`, each keyed by the option that sets it."""
    weights = mlp_parameters(hidden=hidden, depth=depth, dim=dim, time_dim=time_dim) * 4 * 6
    return {
        "--batch-size": batch_size * (hidden * depth + time_dim) * 4 * 8
        + (batch_size**2 * 8 * 4 if coupling in PAIRWISE_COUPLINGS else 0)
        + batch_size * dim * 4 * 16,
        "--hidden": weights,
        "--full-ot-points": full_ot_points**2 * 8 * 4 if coupling == "full-ot" else 0,
    }


def estimate_step_bytes(
    *,
    batch_size: int,
    hidden: int,
    depth: int,
    coupling: str,
    dim: int = 2,
    time_dim: int = 64,
    full_ot_points: int = 0,
) -> int:
    """An upper estimate of the memory one training step needs (see the module docstring)."""
    return sum(
        step_bytes_by_part(
            batch_size=batch_size,
            hidden=hidden,
            depth=depth,
            coupling=coupling,
            dim=dim,
            time_dim=time_dim,
            full_ot_points=full_ot_points,
        ).values()
    )


def estimate_experiment_bytes(
    *,
    n_pairs: int,
    n_eval: int,
    eval_draws: int,
    batch_size: int,
    hidden: int,
    depth: int,
    full_ot_points: int = 0,
    n_projections: int = 256,
    many_steps: int = 64,
    dim: int = 2,
) -> dict[str, int]:
    """The memory of ``bezkit experiment`` by the option that sets each part (module docstring):
    one training step, the pair pools, the evaluation and the evaluation draws."""
    parts = step_bytes_by_part(
        batch_size=batch_size,
        hidden=hidden,
        depth=depth,
        coupling="full-ot" if full_ot_points else "independent",
        dim=dim,
        full_ot_points=full_ot_points,
    )
    parts["--n-pairs"] = n_pairs * dim * 4 * 64
    parts["--n-eval"] = n_eval * (n_projections * 8 * 4 + (many_steps + 1) * dim * 4 * 2)
    parts["--eval-draws"] = eval_draws * n_eval * dim * 4 * 16
    return parts


def largest_part(parts: dict[str, int]) -> str:
    """The option whose part of an estimate is largest."""
    return max(parts, key=lambda k: parts[k])


def check_fits_in_memory(
    needed: int, *, what: str, available: int | None = None, advice: str = "use a smaller batch"
) -> None:
    """Raise :class:`MemoryEstimateError` if ``needed`` bytes exceed the available memory."""
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > available:
        raise MemoryEstimateError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory, more than the "
            f"{available / 2**30:.1f} GiB available; {advice}"
        )
