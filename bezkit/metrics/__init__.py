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
from bezkit.metrics.wasserstein import noise_floor, sliced_wasserstein2, wasserstein2

__all__ = [
    "wasserstein2",
    "sliced_wasserstein2",
    "noise_floor",
    "straightness",
    "normalised_straightness",
    "curvature",
    "transport_cost",
    "path_energy",
    "trajectory_velocities",
    "CrossingStats",
    "segments_cross",
    "trajectory_crossings",
    "coupling_crossings",
]
