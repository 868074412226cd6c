"""The 2D error-accumulation experiment for one (source, target): chains, students, baselines.

For every training seed ``s`` (all seeds of one configuration go through
:func:`~bezkit.experiments.seeds.train_seeds` together):

1. the 1-RF on independent pairs (round 1 of every chain), and the OT baselines;
2. for k = 1..K: each chain's round-k model is evaluated (W2 at one and many steps, its reverse-ODE
   X0, straightness) beside the pairs it *trained on*; for k <= ``student_rounds`` every student of
   the reflow chain's k-RF is trained on the round's pools and evaluated; then each chain's round
   k + 1 is trained on the pairs *made by* round k. Every student is trained once per student
   budget (``cfg.student_budgets()``).

Every seed has its own evaluation draws (:class:`~bezkit.experiments.evaluate.EvalDraws`) from a
held-out reference, shared by every model of that seed: differences between methods are paired by
seed and draw, and the spread over seeds includes the evaluation noise. A user's point file is
split into train and held-out parts (its noise floor compares the two); named distributions draw
the two from separate seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bezkit.couplings.full_ot import FullOTCoupling
from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.minibatch_ot import MinibatchOTCoupling
from bezkit.data.split import check_split_sizes, split_points
from bezkit.data.toy2d import ArraySampler, Sampler, get_sampler
from bezkit.experiments.chains import chain_step
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.evaluate import (
    EvalDraws,
    evaluate_chain_model,
    evaluate_coupling,
    evaluate_student,
    make_eval_draws,
)
from bezkit.experiments.pools import PoolMaker
from bezkit.experiments.protocol import StudentSpec, at_every_budget, student
from bezkit.experiments.seeds import (
    FULL_OT_OFFSET,
    INDEPENDENT_PAIRS_OFFSET,
    SPLIT_OFFSET,
    eval_seed,
    pool_seed,
    stage_seed,
    student_stage,
    train_seeds,
)
from bezkit.experiments.students import restart_samples, student_loss, student_setup
from bezkit.methods.flow import new_mlp, student_from
from bezkit.solvers.ode import solve_ode
from bezkit.training.config import TrainConfig
from bezkit.training.ensemble import BlockLossFn
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import BatchFn, LossFn, TrainResult

__all__ = ["count_trainings", "held_out_split", "run_experiment_pairs", "run_pair"]


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


def count_trainings(cfg: ExperimentConfig) -> int:
    """Trainings of one (source, target) over all seeds: the progress bar's total."""
    per_seed = 1 + len(cfg.baselines) + len(cfg.chains) * (cfg.rounds - 1)
    if "reflow" not in cfg.chains:
        per_seed += cfg.student_rounds - 1
    every = sum(at_every_budget(m, cfg.methods) for m in cfg.methods)
    trainings = len(cfg.methods) + every * (len(cfg.budget_factors) - 1)
    per_seed += trainings * cfg.student_rounds
    return per_seed * cfg.seeds


class _PairRun:
    """The state of one (source, target): samplers, each seed's evaluation draws, records."""

    def __init__(self, source_name: str, target_name: str, cfg: ExperimentConfig, bar: tqdm):
        self.cfg, self.bar = cfg, bar
        frac = cfg.held_out_fraction
        self.source, source_held, self.source_info = held_out_split(source_name, frac, cfg.seed)
        self.target, target_held, self.target_info = held_out_split(target_name, frac, cfg.seed + 1)
        self.seeds = cfg.seed_list()
        points = self.target_info["kind"] == "points"
        #: ``draws[i]``: the evaluation draws of seed ``seeds[i]`` (its own, seeded by it)
        self.draws: list[EvalDraws] = [
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
        self.runs: list[dict[str, Any]] = []
        self.chains: list[dict[str, Any]] = []
        self.couplings: list[dict[str, Any]] = []
        self.paths: dict[tuple[str, int], torch.Tensor] = {}

    def train_config(self, steps: int, desc: str) -> TrainConfig:
        cfg = self.cfg
        return TrainConfig(
            steps=steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=0,
            progress=False,
            desc=desc,
            device="cpu",
        )

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
        seeds = [stage_seed(s, stage) for s in self.seeds]
        out = train_seeds(models, loss, batches, self.train_config(steps, desc), seeds)
        self.bar.update(len(self.seeds))
        return out

    def pools(self, s: int, k: int) -> PoolMaker:
        cfg = self.cfg
        return PoolMaker(
            self.source,
            self.target,
            n_pairs=cfg.n_pairs,
            teacher_steps=cfg.teacher_steps,
            num_branches=cfg.bdense_branches,
            pair_seed=pool_seed(s, k),
        )


def _loss_mean(res: TrainResult) -> float:
    tail = res.losses[-50:]
    return float(sum(tail) / max(1, len(tail)))


def _budget(steps: int, batch: int, pairs: int, nfe: int, seconds: float) -> dict[str, Any]:
    return {
        "steps": steps,
        "batch_size": batch,
        "pairs": pairs,
        "teacher_nfe_per_pair": nfe,
        "teacher_nfe": pairs * nfe,
        "wall_seconds": seconds,
    }


def _students(
    run: _PairRun,
    k: int,
    teachers: list[nn.Module],
    makers: list[PoolMaker],
    second: list[nn.Module] | None,
) -> None:
    cfg = run.cfg
    for b, steps_b in enumerate(cfg.student_budgets()):
        for name in cfg.methods:
            if b == 0 or at_every_budget(name, cfg.methods):
                _student(run, k, student(name), teachers, makers, second, b, steps_b)


def _student(
    run: _PairRun,
    k: int,
    spec: StudentSpec,
    teachers: list[nn.Module],
    makers: list[PoolMaker],
    second: list[nn.Module] | None,
    budget: int,
    train_steps: int,
) -> None:
    """One student method at one budget: trained for every seed, evaluated on each seed's draws."""
    cfg, name = run.cfg, spec.name
    setups = [
        student_setup(
            spec,
            teachers[i],
            makers[i],
            second_teacher=None if second is None else second[i],
            num_branches=cfg.bdense_branches,
        )
        for i in range(len(run.seeds))
    ]
    loss = student_loss(spec, num_branches=cfg.bdense_branches)
    results = run.train(
        student_stage(k, cfg.methods.index(name), budget),
        [st.model for st in setups],
        loss,
        [st.pool.sample for st in setups],
        train_steps,
        f"{name} k={k} ({train_steps} steps)",
    )
    run.bar.set_description(f"evaluate {name} k={k}")
    steps = sorted({*cfg.eval_steps, spec.nfe})
    exact = (spec.nfe,) if name in cfg.exact_methods else ()
    for s, draws, st, res in zip(run.seeds, run.draws, setups, results, strict=True):
        metrics = evaluate_student(res.model, draws, steps, exact_steps=exact)
        if spec.restarts:
            restart = [n for n in (1, 2, 4) if cfg.bdense_branches % n == 0]
            metrics["w2_restart"] = evaluate_student(
                res.model, draws, restart, generate=restart_samples
            )["w2"]
        run.runs.append(
            {
                "method": name,
                "k": k,
                "seed": s,
                "metrics": metrics,
                "final_loss": _loss_mean(res),
                "budget": _budget(
                    train_steps,
                    cfg.batch_size,
                    cfg.n_pairs,
                    st.source.teacher_nfe,
                    res.wall_seconds + st.source.seconds,
                ),
            }
        )


def _record_couplings(
    run: _PairRun, k: int, makers: list[PoolMaker], teachers: list[nn.Module]
) -> None:
    """Both sides of the round's student pools (made by the k-RF)."""
    for s, draws, mk, teacher in zip(run.seeds, run.draws, makers, teachers, strict=True):
        for name, made in (("reflow", mk.reflow), ("data-anchored", mk.anchored)):
            if name == "reflow" and not any(
                student(m).pairs in ("reflow", "forward") for m in run.cfg.methods
            ):
                continue
            if name == "data-anchored" and not any(
                student(m).pairs in ("anchored", "cubic") for m in run.cfg.methods
            ):
                continue
            pool = made(teacher)
            stats = evaluate_coupling(pool.pairs, draws)
            run.couplings.append({"coupling": name, "k": k, "seed": s, **stats})


def _baselines(run: _PairRun) -> list[nn.Module] | None:
    cfg = run.cfg
    otcfm = None
    many = sorted({*cfg.eval_steps, cfg.many_steps})
    for i, name in enumerate(cfg.baselines):
        models = [
            new_mlp(2, hidden=cfg.hidden, depth=cfg.depth, seed=stage_seed(s, 11 + i))
            for s in run.seeds
        ]
        extra = [0.0] * len(run.seeds)
        if name == "otcfm":
            batches: list[BatchFn] = [MinibatchOTCoupling(run.source, run.target).sample] * len(
                run.seeds
            )
        else:
            batches = []
            for j, s in enumerate(run.seeds):
                t0 = time.perf_counter()
                coupling = FullOTCoupling(
                    run.source,
                    run.target,
                    n_points=cfg.full_ot_points,
                    seed=1_000 * s + FULL_OT_OFFSET,
                )
                extra[j] = time.perf_counter() - t0
                batches.append(coupling.sample)
        loss = FlowMatchingLoss(sigma=cfg.sigma)
        results = run.train(11 + i, models, loss, batches, cfg.baseline_steps, name)
        for s, draws, res, secs in zip(run.seeds, run.draws, results, extra, strict=True):
            run.runs.append(
                {
                    "method": name,
                    "k": None,
                    "seed": s,
                    "metrics": evaluate_student(res.model, draws, many),
                    "final_loss": _loss_mean(res),
                    "budget": _budget(
                        cfg.baseline_steps,
                        cfg.batch_size,
                        cfg.baseline_steps * cfg.batch_size,
                        0,
                        res.wall_seconds + secs,
                    ),
                }
            )
        if name == "otcfm":
            otcfm = [res.model.eval() for res in results]
    return otcfm


def run_pair(
    source_name: str, target_name: str, cfg: ExperimentConfig, bar: tqdm | None = None
) -> dict[str, Any]:
    """Run chains, students and baselines on one (source, target); returns a JSON-able dict
    (plus ``"paths"``: seed 0's chain trajectories, tensors for the figures)."""
    own_bar = bar is None
    bar = bar or tqdm(total=count_trainings(cfg), disable=not cfg.progress)
    t_start = time.perf_counter()
    run = _PairRun(source_name, target_name, cfg, bar)
    n_seeds = len(run.seeds)

    models = run.train(
        1,
        [new_mlp(2, hidden=cfg.hidden, depth=cfg.depth, seed=stage_seed(s, 0)) for s in run.seeds],
        FlowMatchingLoss(sigma=cfg.sigma),
        [IndependentCoupling(run.source, run.target).sample] * n_seeds,
        cfg.flow_steps,
        "1-RF",
    )
    otcfm = _baselines(run)

    kinds = list(cfg.chains)
    if "reflow" not in kinds:
        kinds.append("reflow")  # the students' teachers
    current = {kind: [r.model.eval() for r in models] for kind in kinds}
    g = torch.Generator().manual_seed(cfg.seed + INDEPENDENT_PAIRS_OFFSET)
    indep = IndependentCoupling(run.source, run.target).sample(cfg.n_pairs, g)
    first = [{"pairs": "independent", **evaluate_coupling(indep, d)} for d in run.draws]
    trained_on = {kind: list(first) for kind in kinds}
    budget = {
        kind: [
            _budget(
                cfg.flow_steps, cfg.batch_size, cfg.flow_steps * cfg.batch_size, 0, r.wall_seconds
            )
            for r in models
        ]
        for kind in kinds
    }
    needed = {kind: cfg.rounds if kind in cfg.chains else cfg.student_rounds for kind in kinds}
    for k in range(1, cfg.rounds + 1):
        makers = [run.pools(s, k) for s in run.seeds]
        cache: dict[int, dict[str, Any]] = {}
        for kind in cfg.chains:
            bar.set_description(f"evaluate {kind} chain k={k}")
            for i, s in enumerate(run.seeds):
                model = current[kind][i]
                if id(model) not in cache:
                    cache[id(model)] = evaluate_chain_model(
                        model, run.draws[i], many_steps=cfg.many_steps
                    )
                run.chains.append(
                    {
                        "chain": kind,
                        "k": k,
                        "seed": s,
                        "metrics": cache[id(model)],
                        "trained_on": trained_on[kind][i],
                        "budget": budget[kind][i],
                    }
                )
            run.paths[(kind, k)] = _paths(
                current[kind][0], run.draws[0].x0[0][:100], cfg.many_steps
            )
        if k <= cfg.student_rounds:
            teachers = current["reflow"]
            _record_couplings(run, k, makers, teachers)
            _students(run, k, teachers, makers, otcfm)
        for j, kind in enumerate(kinds):
            if k >= needed[kind]:
                continue
            steps_ = [chain_step(kind, current[kind][i], makers[i]) for i in range(n_seeds)]
            results = run.train(
                20 + 10 * k + j,
                [_copy(m) for m in current[kind]],
                steps_[0].loss,
                [st.pool.sample for st in steps_],
                cfg.round_steps,
                f"{kind} chain round {k + 1}",
            )
            current[kind] = [r.model.eval() for r in results]
            trained_on[kind] = [
                {
                    "pairs": f"{st.made.kind} pairs made by round {k}",
                    **evaluate_coupling(st.made.pairs, draws),
                }
                for st, draws in zip(steps_, run.draws, strict=True)
            ]
            budget[kind] = [
                _budget(
                    cfg.round_steps,
                    cfg.batch_size,
                    cfg.n_pairs,
                    st.made.teacher_nfe,
                    r.wall_seconds + st.made.seconds,
                )
                for st, r in zip(steps_, results, strict=True)
            ]
    if own_bar:
        bar.close()
    return {
        "source": source_name,
        "target": target_name,
        "data": {"source": run.source_info, "target": run.target_info},
        "seeds": run.seeds,
        "w2_estimator": cfg.w2,
        "n_eval": cfg.n_eval,
        "eval_draws": cfg.eval_draws,
        "noise_floor": [v for d in run.draws for v in d.noise_floor],
        "source_noise_floor": [v for d in run.draws for v in d.source_noise_floor],
        "noise_floor_by_seed": [list(d.noise_floor) for d in run.draws],
        "source_noise_floor_by_seed": [list(d.source_noise_floor) for d in run.draws],
        "runs": run.runs,
        "chains": run.chains,
        "couplings": run.couplings,
        "wall_seconds": time.perf_counter() - t_start,
        "paths": run.paths,
    }


def _copy(model: nn.Module) -> nn.Module:
    return student_from(model, "teacher")


@torch.no_grad()
def _paths(model: nn.Module, x0: torch.Tensor, steps: int) -> torch.Tensor:
    return solve_ode(model, x0, steps=steps, record=True).recorded_trajectory().clone()


def run_experiment_pairs(
    cfg: ExperimentConfig, *, on_pair: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """``run_pair`` for every configured (source, target), under one progress bar."""
    cfg.validate()
    bar = tqdm(total=count_trainings(cfg) * len(cfg.pairs), disable=not cfg.progress)
    out = []
    try:
        for src, tgt in cfg.pairs:
            out.append(run_pair(src, tgt, cfg, bar))
            if on_pair is not None:
                on_pair(out[-1])
    finally:
        bar.close()
    return out
