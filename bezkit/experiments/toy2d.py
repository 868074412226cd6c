"""The 2D error-accumulation experiment for one (source, target): chains, students, baselines.

For every training seed ``s`` (all seeds of one configuration go through
:func:`~bezkit.experiments.seeds.train_seeds` together):

1. the 1-RF on independent pairs (round 1 of every chain), and the OT baselines;
2. for k = 1..K: each chain's round-k model is evaluated (W2 at one and many steps, its reverse-ODE
   X0, straightness) beside the pairs it *trained on*; for k <= ``student_rounds`` every student of
   the reflow chain's k-RF is trained on the round's pools and evaluated; each chain's round
   k + 1 is trained on the pairs *made by* round k. Every student is trained once per student
   budget (``cfg.student_budgets()``).

The work is cut into units (:mod:`bezkit.experiments.pair_units`), run in three waves: the 1-RF
and the baselines; round 1, the chains and the students of the 1-RF; the students of later rounds.
Within a wave the units are independent: with ``jobs`` > 1 they run in that many worker
processes. Every unit keeps what it made in the pair's stage store, so a killed run continues
from its finished units, and the pair's record is assembled from the store in one fixed order:
the numbers do not depend on ``jobs`` or on interruptions.

Every seed has its own evaluation draws (:class:`~bezkit.experiments.evaluate.EvalDraws`) from a
held-out reference, shared by every model of that seed: differences between methods are paired by
seed and draw, and the spread over seeds includes the evaluation noise. A user's point file is
split into train and held-out parts (its noise floor compares the two); named distributions draw
the two from separate seeds.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from bezkit.executor import KeptExecutor, Task, local_executor, run_tasks
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.pair_context import (
    PairContext,
    Unit,
    chain_kinds,
    chain_rounds,
    held_out_split,
)
from bezkit.experiments.pair_units import run_unit, run_unit_here
from bezkit.experiments.protocol import at_every_budget
from bezkit.experiments.stage_store import StageStore, tensors_to_paths

__all__ = ["count_trainings", "held_out_split", "pair_waves", "run_experiment_pairs", "run_pair"]


def count_trainings(cfg: ExperimentConfig) -> int:
    """Trainings of one (source, target) over all seeds: the progress bar's total."""
    per_seed = 1 + len(cfg.baselines) + len(cfg.chains) * (cfg.rounds - 1)
    if "reflow" not in cfg.chains:
        per_seed += cfg.student_rounds - 1
    every = sum(at_every_budget(m, cfg.methods) for m in cfg.methods)
    trainings = len(cfg.methods) + every * (len(cfg.budget_factors) - 1)
    per_seed += trainings * cfg.student_rounds
    return per_seed * cfg.seeds


def _student_units(cfg: ExperimentConfig, k: int) -> list[Unit]:
    """The students of round ``k``, in the order of the pair's record (budget, then method)."""
    return [
        Unit("student", name, k, b)
        for b in range(len(cfg.budget_factors))
        for name in cfg.methods
        if b == 0 or at_every_budget(name, cfg.methods)
    ]


def pair_waves(cfg: ExperimentConfig) -> list[list[Unit]]:
    """The units of one pair in waves: a unit needs only units of earlier waves. Within a wave
    the longest units come first (they are started first by the workers)."""
    first = [Unit("flow"), *(Unit("baseline", name) for name in cfg.baselines)]
    kinds = sorted(chain_kinds(cfg), key=lambda kind: kind != "reflow")
    chains = [Unit("chain", kind, chain_rounds(cfg, kind)) for kind in kinds]
    students = _student_units(cfg, 1)
    second = [
        *(u for u in chains if u.k > 1),
        *sorted(students, key=lambda u: -u.budget),
        Unit("round-1"),
    ]
    later = [u for k in range(2, cfg.student_rounds + 1) for u in _student_units(cfg, k)]
    return [w for w in (first, second, later) if w]


def run_pair(
    source_name: str,
    target_name: str,
    cfg: ExperimentConfig,
    bar: tqdm | None = None,
    *,
    store: StageStore | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run chains, students and baselines on one (source, target); returns a JSON-able dict
    (plus ``"paths"``: seed 0's chain trajectories, tensors for the figures).

    ``store`` keeps every finished unit (default: in memory, or a temporary folder when
    ``jobs`` > 1); the units it already holds are not run again. ``jobs`` > 1 runs the units
    of each wave in that many worker processes, each with this process's torch thread count
    (with a store in memory, ``StageStore(None, ...)``, they run here). ``bar``: the caller's
    progress bar (advanced by ``count_trainings(cfg)``), else one of its own."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    own_bar = bar is None
    if bar is None:  # not `bar or ...`: a tqdm without a total has no truth value
        bar = tqdm(total=count_trainings(cfg), disable=not cfg.progress)
    t_start = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            if store is None:
                root = None
                if jobs > 1:
                    root = stack.enter_context(tempfile.TemporaryDirectory(prefix="bezkit-pair-"))
                store = StageStore(root, "this-run")
            ctx = PairContext(source_name, target_name, cfg, store, bar)
            # one pool of workers for every wave: each worker imports torch and loads the
            # pair's models once, not once per wave
            pool = stack.enter_context(KeptExecutor(lambda: local_executor(jobs)))
            for wave in pair_waves(cfg):
                _run_wave(ctx, wave, source_name, target_name, jobs, pool)
            result = _assemble(ctx, source_name, target_name)
    finally:
        if own_bar:
            bar.close()
    result["wall_seconds"] = time.perf_counter() - t_start
    return result


def _remaining(ctx: PairContext, unit: Unit) -> int:
    """Trainings of ``unit`` not yet kept in the store (for the progress bar)."""
    if unit.kind == "chain":
        keys = [f"chain-{unit.name}-{k}" for k in range(2, unit.k + 1)]
        return sum(not ctx.store.has(key) for key in keys)
    return 0 if ctx.store.has(unit.key) else unit.trainings(ctx.cfg)


def _run_wave(
    ctx: PairContext, wave: list[Unit], source: str, target: str, jobs: int, pool: KeptExecutor
) -> None:
    store, n_seeds = ctx.store, len(ctx.seeds)
    todo = [u for u in wave if not store.has(u.key)]
    ctx.bar.update(sum(u.trainings(ctx.cfg) - _remaining(ctx, u) for u in wave) * n_seeds)
    workers = min(jobs, len(todo)) if store.root is not None else 1
    if workers <= 1:
        for unit in todo:
            run_unit_here(ctx, unit)
        return
    counts = [_remaining(ctx, u) for u in todo]
    threads = torch.get_num_threads()
    tasks = [
        Task(
            f"{source} -> {target}: {u.key}",
            run_unit,
            (source, target, ctx.cfg, str(store.root), store.run_id, u, threads, ctx.draws),
        )
        for u in todo
    ]

    def done(i: int, _key: str) -> None:
        ctx.bar.set_description(f"finished {todo[i].key}")
        ctx.bar.update(counts[i] * n_seeds)

    run_tasks(tasks, done, pool)


def _assemble(ctx: PairContext, source_name: str, target_name: str) -> dict[str, Any]:
    """The pair's record from its finished stages, in one fixed order (that of a run of the
    units one after another)."""
    cfg = ctx.cfg

    def record(key: str) -> dict[str, Any]:
        stage = ctx.store.load(key, models=False)
        if stage is None:
            raise RuntimeError(f"stage {key!r} of {source_name} -> {target_name} is missing")
        return stage.record

    runs = [r for name in cfg.baselines for r in record(f"baseline-{name}")["runs"]]
    for k in range(1, cfg.student_rounds + 1):
        runs += [r for u in _student_units(cfg, k) for r in record(u.key)["runs"]]
    first = ctx.store.load("round-1", models=False)
    assert first is not None
    round_one = tensors_to_paths(first.tensors)
    chains: list[dict[str, Any]] = []
    paths: dict[tuple[str, int], torch.Tensor] = {}
    for k in range(1, cfg.rounds + 1):
        for kind in cfg.chains:
            if k == 1:
                chains += first.record["chains"][kind]
                paths[(kind, 1)] = round_one[(kind, 1)]
            else:
                stage = ctx.store.load(f"chain-{kind}-{k}", models=False)
                assert stage is not None
                chains += stage.record["chains"]
                paths.update(tensors_to_paths(stage.tensors))
    couplings = list(first.record["couplings"])
    for k in range(2, cfg.student_rounds + 1):
        couplings += record(f"chain-reflow-{k}")["couplings"]
    return {
        "source": source_name,
        "target": target_name,
        "data": {"source": ctx.source_info, "target": ctx.target_info},
        "seeds": ctx.seeds,
        "w2_estimator": cfg.w2,
        "n_eval": cfg.n_eval,
        "eval_draws": cfg.eval_draws,
        "noise_floor": [v for d in ctx.draws for v in d.noise_floor],
        "source_noise_floor": [v for d in ctx.draws for v in d.source_noise_floor],
        "noise_floor_by_seed": [list(d.noise_floor) for d in ctx.draws],
        "source_noise_floor_by_seed": [list(d.source_noise_floor) for d in ctx.draws],
        "runs": runs,
        "chains": chains,
        "couplings": couplings,
        "paths": paths,
    }


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
