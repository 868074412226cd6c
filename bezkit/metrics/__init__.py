"""Metrics: Wasserstein distances, straightness and cost, crossings."""

from bezkit.metrics.crossings import (
    CrossingStats,
    coupling_crossings,
    segments_cross,
    trajectory_crossings,
)
from bezkit.metrics.straightness import (
    curvature,
    normalised_straightness,
    path_energy,
    straightness,
    trajectory_velocities,
    transport_cost,
)
from bezkit.metrics.wasserstein import (
    noise_floor,
    reference_noise_floor,
    sliced_wasserstein2,
    wasserstein2,
)

__all__ = [
    "CrossingStats",
    "coupling_crossings",
    "curvature",
    "noise_floor",
    "normalised_straightness",
    "path_energy",
    "reference_noise_floor",
    "segments_cross",
    "sliced_wasserstein2",
    "straightness",
    "trajectory_crossings",
    "trajectory_velocities",
    "transport_cost",
    "wasserstein2",
]
