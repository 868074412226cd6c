"""Velocity networks ``model(x, t)``."""

from bezkit.models.branched import BranchedVelocity, branch_times
from bezkit.models.mlp import MLPVelocity
from bezkit.models.time_embedding import SinusoidalTimeEmbedding

__all__ = ["BranchedVelocity", "MLPVelocity", "SinusoidalTimeEmbedding", "branch_times"]
