"""Metrics: Wasserstein distances, straightness and cost, crossings, Frechet distances (digits
features offline, FID)."""

from bezkit.metrics.crossings import (
    CrossingStats,
    SegmentCrossings,
    coupling_crossings,
    crossing_mask,
    segment_crossings,
    segments_cross,
    trajectory_crossings,
)
from bezkit.metrics.digits_classifier import (
    DigitsClassifier,
    digits_features,
    digits_frechet_distance,
    load_digits_classifier,
)
from bezkit.metrics.feature_cache import cache_dir
from bezkit.metrics.fid import cifar10_fid, cifar10_train_statistics, inception_statistics
from bezkit.metrics.frechet import RunningMoments, frechet_distance, gaussian_statistics
from bezkit.metrics.inception import (
    FID_WEIGHTS_ENV,
    FID_WEIGHTS_URL,
    FIDInceptionV3,
    fid_backend,
    load_fid_inception,
)
from bezkit.metrics.path_metrics import (
    curvature,
    normalised_path_energy,
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
    "FID_WEIGHTS_ENV",
    "FID_WEIGHTS_URL",
    "CrossingStats",
    "DigitsClassifier",
    "FIDInceptionV3",
    "RunningMoments",
    "SegmentCrossings",
    "cache_dir",
    "cifar10_fid",
    "cifar10_train_statistics",
    "coupling_crossings",
    "crossing_mask",
    "curvature",
    "digits_features",
    "digits_frechet_distance",
    "fid_backend",
    "frechet_distance",
    "gaussian_statistics",
    "inception_statistics",
    "load_digits_classifier",
    "load_fid_inception",
    "noise_floor",
    "normalised_path_energy",
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
