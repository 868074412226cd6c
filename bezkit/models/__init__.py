"""Velocity networks ``model(x, t)``."""

from bezkit.models.branched import BranchedVelocity, branch_times
from bezkit.models.ensemble import EnsembleVelocity, seed_block_size
from bezkit.models.mlp import MLPVelocity
from bezkit.models.time_embedding import SinusoidalTimeEmbedding

__all__ = [
    "BranchedVelocity",
    "EnsembleVelocity",
    "MLPVelocity",
    "SinusoidalTimeEmbedding",
    "branch_times",
    "seed_block_size",
]
