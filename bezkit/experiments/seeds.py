"""Train one configuration for several seeds: the single place the experiment's seeds go through.

``train_seeds(models, loss_fn, sample_batches, config, seeds)[s]`` equals (up to float rounding)
``train(models[s], loss_fn, sample_batches[s], replace(config, seed=seeds[s]))``: the same loss,
per-seed models, pair sources and seeds. The seeds train together as one vectorised ensemble
(:func:`bezkit.training.ensemble.train_ensemble`): the 2D models are so small that per-step
overhead, not arithmetic, is the cost, and the ensemble pays it once for all seeds.

Every other seed of the experiment is derived here from the training seed ``s`` (so no two
streams coincide and a method's seeds do not depend on which other methods run):

- model initialisation and training: ``7919 s + stage`` (:func:`stage_seed`), with the stage of
  the 1-RF (1), the OT baselines (11 + i), the chain rounds (20 + 10 k + j) and the students
  (:func:`student_stage`: ``100 + 50 k + position``, plus ``1000 b`` for student budget ``b``);
- pools of round ``k``: ``1000 s + 100 + k`` (:func:`pool_seed`); the full-OT map:
  ``1000 s + 30011``;
- evaluation draws of seed ``s``: :func:`eval_seed` (each seed its own held-out draws);
- the split of a point file: ``seed + 50021`` (source: ``seed``, target: ``seed + 1``); the
  independent pairs of round 1's coupling record: ``seed + 60013``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from bezkit.training.config import TrainConfig
from bezkit.training.ensemble import BlockLossFn, train_ensemble
from bezkit.training.trainer import BatchFn, TrainResult

__all__ = [
    "FULL_OT_OFFSET",
    "INDEPENDENT_PAIRS_OFFSET",
    "SPLIT_OFFSET",
    "eval_seed",
    "pool_seed",
    "stage_seed",
    "student_stage",
    "train_seeds",
]

#: Offset of the full-OT map's seed (``1000 s + FULL_OT_OFFSET``).
FULL_OT_OFFSET = 30_011
#: Offset of a point file's train / held-out split seed.
SPLIT_OFFSET = 50_021
#: Offset of the independent pairs recorded as round 1's training pairs.
INDEPENDENT_PAIRS_OFFSET = 60_013


def stage_seed(seed: int, stage: int) -> int:
    """The initialisation / training seed of one stage of training seed ``seed``:
    ``7919 seed + stage``."""
    return 7919 * seed + stage


def student_stage(k: int, position: int, budget: int = 0) -> int:
    """The stage of the student at ``position`` in the method list, round ``k``, student budget
    number ``budget`` (0: the first budget): ``100 + 50 k + position + 1000 budget``."""
    if not 0 <= position < 50:
        raise ValueError(f"at most 50 student methods per round, got position {position}")
    return 100 + 50 * k + position + 1000 * budget


def pool_seed(seed: int, k: int) -> int:
    """The seed of the pools of round ``k`` for training seed ``seed``: ``1000 seed + 100 + k``."""
    return 1_000 * seed + 100 + k


def eval_seed(seed: int) -> int:
    """The seed of training seed ``seed``'s own evaluation draws (and their sliced-W2
    directions): ``104729 (seed + 1)``, far from every other stream."""
    return 104_729 * (seed + 1)


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
