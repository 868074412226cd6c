"""Refuse a batch that cannot fit in memory, before the kernel kills the process silently.

``estimate_step_bytes`` is a deliberate over-estimate of one training step of the 2D MLP
(``bezkit.models.MLPVelocity``) on ``batch_size`` pairs:

    activations   batch * (hidden * depth + time_dim) * 4 bytes * 8   (forward values, their
                  gradients, AdamW and autograd temporaries)
    coupling      minibatch OT / Sinkhorn: batch^2 * 8 bytes * 4      (float64 cost matrix,
                  plan and the solver's copies)
    data          batch * dim * 4 bytes * 16                           (pairs, path points, targets)

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
    "estimate_step_bytes",
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


def estimate_step_bytes(
    *, batch_size: int, hidden: int, depth: int, coupling: str, dim: int = 2, time_dim: int = 64
) -> int:
    """An upper estimate of the memory one training step needs (see the module docstring)."""
    activations = batch_size * (hidden * depth + time_dim) * 4 * 8
    pairing = batch_size**2 * 8 * 4 if coupling in PAIRWISE_COUPLINGS else 0
    data = batch_size * dim * 4 * 16
    return activations + pairing + data


def check_fits_in_memory(needed: int, *, what: str, available: int | None = None) -> None:
    """Raise :class:`MemoryEstimateError` if ``needed`` bytes exceed the available memory."""
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > available:
        raise MemoryEstimateError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory, more than the "
            f"{available / 2**30:.1f} GiB available; use a smaller batch"
        )
