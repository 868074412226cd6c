"""Paths joining a pair (X0, X1), what a network regresses on them, and how times are drawn."""

from bezkit.paths.bezier import BezierPath, LinearPath, bernstein, check_time
from bezkit.paths.geometry import BezierGeometry, bezier_geometry, degree_elevate
from bezkit.paths.guides import (
    GUIDE_PLACEMENTS,
    GuidePlacement,
    check_guide_times,
    place_guides,
)
from bezkit.paths.path_sample import PathSample
from bezkit.paths.targets import TARGETS, TargetKind, regression_target
from bezkit.paths.time_sampling import (
    DiscreteTime,
    LogitNormalTime,
    TimeSampler,
    UniformTime,
    UShapedTime,
    distill_times,
    make_time_sampler,
)

__all__ = [
    "GUIDE_PLACEMENTS",
    "TARGETS",
    "BezierGeometry",
    "BezierPath",
    "DiscreteTime",
    "GuidePlacement",
    "LinearPath",
    "LogitNormalTime",
    "PathSample",
    "TargetKind",
    "TimeSampler",
    "UShapedTime",
    "UniformTime",
    "bernstein",
    "bezier_geometry",
    "check_guide_times",
    "check_time",
    "degree_elevate",
    "distill_times",
    "make_time_sampler",
    "place_guides",
    "regression_target",
]
