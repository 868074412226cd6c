"""Train one configuration for several seeds: the single place the experiment's seeds go through.

``train_seeds(models, loss_fn, sample_batches, config, seeds)[s]`` equals (up to float rounding)
``train(models[s], loss_fn, sample_batches[s], replace(config, seed=seeds[s]))``: the same loss,
per-seed models, pair sources and seeds. The seeds train together as one vectorised ensemble
(:func:`bezkit.training.ensemble.train_ensemble`): the 2D models are so small that per-step
overhead, not arithmetic, is the cost, and the ensemble pays it once for all seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from bezkit.training.config import TrainConfig
from bezkit.training.ensemble import BlockLossFn, train_ensemble
from bezkit.training.trainer import BatchFn, TrainResult

__all__ = ["train_seeds"]


def train_seeds(
    models: Sequence[nn.Module],
    loss_fn: BlockLossFn,
    sample_batches: Sequence[BatchFn],
    config: TrainConfig,
    seeds: Sequence[int],
) -> list[TrainResult]:
    """Train ``models[s]`` with seed ``seeds[s]`` on ``sample_batches[s]`` for every ``s``.

    Each result's ``wall_seconds`` is its share of the ensemble's time (total / number of seeds)."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds must differ, got {list(seeds)}")
    results = train_ensemble(models, loss_fn, sample_batches, config, seeds)
    for res in results:
        res.wall_seconds /= len(results)
    return results
