"""One pair of the 2D experiment as its units see it: the samplers (a point file split into train
and held-out parts), each seed's evaluation draws, the pair's stage store, and the models and pools
already made in this process (:class:`PairContext`); which units there are (:class:`Unit`) and
which chains are trained.

The units themselves are in :mod:`bezkit.experiments.pair_units`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn
from tqdm.auto import tqdm

from bezkit.data.split import check_split_sizes, split_points
from bezkit.data.toy2d import ArraySampler, Sampler, get_sampler
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.evaluate import EvalDraws, make_eval_draws
from bezkit.experiments.pools import PoolMaker
from bezkit.experiments.seeds import SPLIT_OFFSET, eval_seed, pool_seed, stage_seed, train_seeds
from bezkit.experiments.stage_store import StageStore
from bezkit.training.config import TrainConfig
from bezkit.training.ensemble import BlockLossFn
from bezkit.training.trainer import BatchFn, LossFn, TrainResult

__all__ = [
    "PairContext",
    "Unit",
    "chain_kinds",
    "chain_rounds",
    "held_out_split",
    "teacher_key",
]


def held_out_split(name: str, fraction: float, seed: int) -> tuple[Sampler, Sampler, dict]:
    """``(train sampler, held-out sampler, info)`` of a named distribution or a point file.

    A point file is split by :func:`bezkit.data.split.split_points` (disjoint parts, seeded; a
    part too small to measure is a ``ValueError``, a noisy one a warning); a named distribution
    is the same sampler for both (the held-out draws use their own seeds, so they are never
    training samples)."""
    sampler = get_sampler(name)
    if not isinstance(sampler, ArraySampler):
        return sampler, sampler, {"name": name, "kind": "distribution"}
    train, held = split_points(sampler.points, fraction, seed + SPLIT_OFFSET)
    check_split_sizes(name, int(train.shape[0]), int(held.shape[0]), fraction)
    info = {
        "name": name,
        "kind": "points",
        "train": int(train.shape[0]),
        "held_out": int(held.shape[0]),
    }
    return (
        ArraySampler(train, name=f"{sampler.name} (train)"),
        ArraySampler(held, name=f"{sampler.name} (held out)"),
        info,
    )


def chain_kinds(cfg: ExperimentConfig) -> list[str]:
    """The chains trained: ``cfg.chains``, plus ``reflow`` (the students' teachers) if missing."""
    kinds = list(cfg.chains)
    if "reflow" not in kinds:
        kinds.append("reflow")
    return kinds


def chain_rounds(cfg: ExperimentConfig, kind: str) -> int:
    """How many rounds of chain ``kind`` are trained (a chain only the students need: theirs)."""
    return cfg.rounds if kind in cfg.chains else cfg.student_rounds


def teacher_key(k: int) -> str:
    """The stage whose models are the k-RF (the students' teacher at round ``k``)."""
    return "flow-1rf" if k == 1 else f"chain-reflow-{k}"


@dataclass(frozen=True)
class Unit:
    """One unit of a pair (module docstring): ``kind`` is ``flow``, ``baseline``, ``round-1``,
    ``chain`` or ``student``; ``name`` the baseline, chain kind or student method; ``k`` the
    round; ``budget`` the student budget's number."""

    kind: str
    name: str = ""
    k: int = 1
    budget: int = 0

    @property
    def key(self) -> str:
        """The stage key the unit is kept under (its last stage for a chain)."""
        if self.kind == "flow":
            return "flow-1rf"
        if self.kind == "baseline":
            return f"baseline-{self.name}"
        if self.kind == "round-1":
            return "round-1"
        if self.kind == "chain":
            return f"chain-{self.name}-{self.k}"
        return f"student-{self.k}-{self.name}-{self.budget}"

    def trainings(self, cfg: ExperimentConfig) -> int:
        """Configurations trained (each for every seed): the progress bar's steps / seeds."""
        if self.kind == "round-1":
            return 0
        if self.kind == "chain":
            return self.k - 1
        return 1


class PairContext:
    """One pair's samplers and each seed's evaluation draws (``draws[i]`` of seed
    ``seeds[i]``), its stage store, and the models and pools already made in this process.

    ``draws``: the pair's draws made elsewhere (a worker gets its parent's: they are the same
    numbers, and with ``w2="exact"`` their noise floors are the costly part of a context)."""

    def __init__(
        self,
        source_name: str,
        target_name: str,
        cfg: ExperimentConfig,
        store: StageStore,
        bar: tqdm | None = None,
        *,
        draws: Sequence[EvalDraws] | None = None,
    ) -> None:
        self.cfg, self.store = cfg, store
        self.bar = bar if bar is not None else tqdm(disable=True)
        frac = cfg.held_out_fraction
        self.source, source_held, self.source_info = held_out_split(source_name, frac, cfg.seed)
        self.target, target_held, self.target_info = held_out_split(target_name, frac, cfg.seed + 1)
        self.seeds = cfg.seed_list()
        points = self.target_info["kind"] == "points"
        if draws is not None and len(draws) != len(self.seeds):
            raise ValueError(f"{len(draws)} seeds' evaluation draws for {len(self.seeds)} seeds")
        self.draws: list[EvalDraws] = (
            list(draws)
            if draws is not None
            else [
                make_eval_draws(
                    source_held,
                    target_held,
                    n=cfg.n_eval,
                    draws=cfg.eval_draws,
                    seed=eval_seed(s),
                    estimator=cfg.w2,
                    n_projections=cfg.n_projections,
                    second_sample=self.target if points else None,
                )
                for s in self.seeds
            ]
        )
        self._models: dict[str, list[nn.Module]] = {}
        self._makers: dict[int, list[PoolMaker]] = {}

    def models(self, key: str) -> list[nn.Module]:
        """The models stage ``key`` trained (one per seed), loaded once per process; the same
        objects every time, so the pools made from them are made once too."""
        if key not in self._models:
            stage = self.store.load(key)
            if stage is None or "model" not in stage.models:
                raise RuntimeError(f"stage {key!r} has not finished: its models are missing")
            self._models[key] = [m.eval() for m in stage.models["model"]]
        return self._models[key]

    def keep_models(self, key: str, models: Sequence[nn.Module]) -> None:
        """Remember the models stage ``key`` just trained (so they are not loaded again)."""
        self._models[key] = list(models)

    def pools(self, k: int) -> list[PoolMaker]:
        """Every seed's pools of round ``k`` (one maker per seed, cached here)."""
        if k not in self._makers:
            cfg = self.cfg
            self._makers[k] = [
                PoolMaker(
                    self.source,
                    self.target,
                    n_pairs=cfg.n_pairs,
                    teacher_steps=cfg.teacher_steps,
                    num_branches=cfg.bdense_branches,
                    pair_seed=pool_seed(s, k),
                )
                for s in self.seeds
            ]
        return self._makers[k]

    def train(
        self,
        stage: int,
        models: Sequence[nn.Module],
        loss: LossFn,
        batches: Sequence[BatchFn],
        steps: int,
        desc: str,
    ) -> list[TrainResult]:
        """All seeds of one configuration; training seeds differ by seed and by ``stage``.

        ``loss`` must score seed-blocked batches (a ``BlockLossFn``: the seeds train as one
        ensemble); any other loss is a ``TypeError``."""
        if not isinstance(loss, BlockLossFn):
            raise TypeError(
                f"{desc}: the loss {loss!r} has no block_losses (needed by train_seeds)"
            )
        self.bar.set_description(desc)
        cfg = self.cfg
        config = TrainConfig(
            steps=steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=0,
            progress=False,
            desc=desc,
            device="cpu",
        )
        seeds = [stage_seed(s, stage) for s in self.seeds]
        out = train_seeds(models, loss, batches, config, seeds)
        self.bar.update(len(self.seeds))
        return out
