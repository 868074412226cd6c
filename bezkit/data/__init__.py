"""Where samples come from: 2D toys, a user's own points (and their train / held-out split), and
(images) digits and CIFAR-10."""

from bezkit.data.split import PointSplit, split_points
from bezkit.data.torchcfm2d import TORCHCFM_DATASETS
from bezkit.data.toy2d import (
    NAMED_DATASETS,
    TOY_DATASETS,
    ArraySampler,
    Sampler,
    ToySampler,
    check_points,
    get_sampler,
    load_points,
)

__all__ = [
    "NAMED_DATASETS",
    "TORCHCFM_DATASETS",
    "TOY_DATASETS",
    "ArraySampler",
    "PointSplit",
    "Sampler",
    "ToySampler",
    "check_points",
    "get_sampler",
    "load_points",
    "split_points",
]
