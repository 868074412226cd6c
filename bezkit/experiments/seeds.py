"""Train one configuration for several seeds: the single place the experiment's seeds go through.

``train_seeds(models, loss_fn, sample_batches, config, seeds)[s]`` is
``train(models[s], loss_fn, sample_batches[s], replace(config, seed=seeds[s]))``: the same loss,
per-seed models, pair sources and seeds. Today it trains the seeds one after another; a vectorised
ensemble (all seeds in one batched step) can replace its body without changing any caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from bezkit.training.config import TrainConfig
from bezkit.training.trainer import BatchFn, LossFn, TrainResult, train

__all__ = ["train_seeds"]


def train_seeds(
    models: Sequence[nn.Module],
    loss_fn: LossFn,
    sample_batches: Sequence[BatchFn],
    config: TrainConfig,
    seeds: Sequence[int],
) -> list[TrainResult]:
    """Train ``models[s]`` with seed ``seeds[s]`` on ``sample_batches[s]`` for every ``s``.

    Each result's ``wall_seconds`` is the time spent on its seed."""
    if not (len(models) == len(sample_batches) == len(seeds)):
        raise ValueError(
            f"train_seeds needs one model and one pair source per seed: {len(models)} models, "
            f"{len(sample_batches)} pair sources, {len(seeds)} seeds"
        )
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds must differ, got {list(seeds)}")
    out = []
    for model, batches, seed in zip(models, sample_batches, seeds, strict=True):
        t0 = time.perf_counter()
        res = train(model, loss_fn, batches, replace(config, seed=seed))
        res.wall_seconds = time.perf_counter() - t0
        out.append(res)
    return out
