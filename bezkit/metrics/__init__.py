"""Metrics: Wasserstein distances, straightness and cost, crossings."""

from bezkit.metrics.crossings import (
    CrossingStats,
    SegmentCrossings,
    coupling_crossings,
    crossing_mask,
    segment_crossings,
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
    "SegmentCrossings",
    "coupling_crossings",
    "crossing_mask",
    "curvature",
    "noise_floor",
    "normalised_straightness",
    "path_energy",
    "reference_noise_floor",
    "segment_crossings",
    "segments_cross",
    "sliced_wasserstein2",
    "straightness",
    "trajectory_crossings",
    "trajectory_velocities",
    "transport_cost",
    "wasserstein2",
]
