"""The units of work of one (source, target) pair: each trains and evaluates one stage for every
seed and keeps what it made in the pair's :class:`~bezkit.experiments.stage_store.StageStore`.

A unit reads the trained models it needs from the store and writes its own, so the units of a
pair can run in this process or in worker processes (``bezkit experiment --jobs``), and a killed
run continues from the units it finished (``--resume``). Every unit is seeded on its own
(:mod:`bezkit.experiments.seeds`) and the weights it reads come back bit for bit, so where or when
a unit runs never changes a number.

=====================  ===========================================================  ============
unit (stage key)       trains and evaluates                                         needs
=====================  ===========================================================  ============
``flow-1rf``           the 1-RF on independent pairs (round 1 of every chain)       -
``baseline-<name>``    an OT baseline (``otcfm``, ``full-ot``), evaluated           -
``round-1``            round 1 of every chain (the 1-RF) and round 1's couplings    ``flow-1rf``
``chain-<kind>-<k>``   round k of a chain, from round k - 1 on the pairs it made     round k - 1
``student-<k>-<m>-<b>``  student ``m`` of the k-RF at student budget number ``b``   the k-RF
=====================  ===========================================================  ============

(:func:`~bezkit.experiments.toy2d.run_pair` runs them in waves and assembles the pair's record.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bezkit.couplings.full_ot import FullOTCoupling
from bezkit.couplings.independent import IndependentCoupling
from bezkit.couplings.minibatch_ot import MinibatchOTCoupling
from bezkit.experiments.chains import chain_step
from bezkit.experiments.config import ExperimentConfig
from bezkit.experiments.evaluate import (
    EvalDraws,
    evaluate_chain_model,
    evaluate_coupling,
    evaluate_student,
)
from bezkit.experiments.pair_context import (
    PairContext,
    Unit,
    chain_kinds,
    teacher_key,
)
from bezkit.experiments.protocol import student
from bezkit.experiments.seeds import (
    FULL_OT_OFFSET,
    INDEPENDENT_PAIRS_OFFSET,
    stage_seed,
    student_stage,
)
from bezkit.experiments.stage_store import StageStore, paths_to_tensors
from bezkit.experiments.students import restart_samples, student_loss, student_setup
from bezkit.methods.flow import new_mlp, student_from
from bezkit.solvers.ode import solve_ode
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import BatchFn, TrainResult

__all__ = ["run_unit", "run_unit_here"]


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


def _flow(ctx: PairContext) -> None:
    """``flow-1rf``: the 1-RF on independent pairs (round 1 of every chain)."""
    cfg = ctx.cfg
    results = ctx.train(
        1,
        [new_mlp(2, hidden=cfg.hidden, depth=cfg.depth, seed=stage_seed(s, 0)) for s in ctx.seeds],
        FlowMatchingLoss(sigma=cfg.sigma),
        [IndependentCoupling(ctx.source, ctx.target).sample] * len(ctx.seeds),
        cfg.flow_steps,
        "1-RF",
    )
    budget = [
        _budget(cfg.flow_steps, cfg.batch_size, cfg.flow_steps * cfg.batch_size, 0, r.wall_seconds)
        for r in results
    ]
    models = [r.model.eval() for r in results]
    ctx.store.save("flow-1rf", {"budget": budget}, models={"model": models})
    ctx.keep_models("flow-1rf", models)


def _baseline(ctx: PairContext, name: str) -> None:
    """``baseline-<name>``: an OT baseline trained once per seed, evaluated at many steps."""
    cfg = ctx.cfg
    i = cfg.baselines.index(name)
    many = sorted({*cfg.eval_steps, cfg.many_steps})
    models = [
        new_mlp(2, hidden=cfg.hidden, depth=cfg.depth, seed=stage_seed(s, 11 + i))
        for s in ctx.seeds
    ]
    extra = [0.0] * len(ctx.seeds)
    if name == "otcfm":
        batches: list[BatchFn] = [MinibatchOTCoupling(ctx.source, ctx.target).sample] * len(
            ctx.seeds
        )
    else:
        batches = []
        for j, s in enumerate(ctx.seeds):
            t0 = time.perf_counter()
            coupling = FullOTCoupling(
                ctx.source, ctx.target, n_points=cfg.full_ot_points, seed=1_000 * s + FULL_OT_OFFSET
            )
            extra[j] = time.perf_counter() - t0
            batches.append(coupling.sample)
    results = ctx.train(11 + i, models, FlowMatchingLoss(sigma=cfg.sigma), batches,
                        cfg.baseline_steps, name)  # fmt: skip
    runs = [
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
        for s, draws, res, secs in zip(ctx.seeds, ctx.draws, results, extra, strict=True)
    ]
    trained = [res.model.eval() for res in results]
    ctx.store.save(f"baseline-{name}", {"runs": runs}, models={"model": trained})
    ctx.keep_models(f"baseline-{name}", trained)


def _couplings(ctx: PairContext, k: int, teachers: list[nn.Module]) -> list[dict[str, Any]]:
    """Both sides of the round's student pools (made by the k-RF)."""
    methods = ctx.cfg.methods
    out = []
    for s, draws, mk, teacher in zip(ctx.seeds, ctx.draws, ctx.pools(k), teachers, strict=True):
        for name, made in (("reflow", mk.reflow), ("data-anchored", mk.anchored)):
            if name == "reflow" and not any(
                student(m).pairs in ("reflow", "forward") for m in methods
            ):
                continue
            if name == "data-anchored" and not any(
                student(m).pairs in ("anchored", "cubic") for m in methods
            ):
                continue
            stats = evaluate_coupling(made(teacher).pairs, draws)
            out.append({"coupling": name, "k": k, "seed": s, **stats})
    return out


def _chain_records(
    ctx: PairContext,
    kind: str,
    k: int,
    metrics: list[dict[str, Any]],
    trained_on: list[dict[str, Any]],
    budget: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return [
        {"chain": kind, "k": k, "seed": s, "metrics": m, "trained_on": t, "budget": b}
        for s, m, t, b in zip(ctx.seeds, metrics, trained_on, budget, strict=True)
    ]


@torch.no_grad()
def _paths(model: nn.Module, x0: torch.Tensor, steps: int) -> torch.Tensor:
    return solve_ode(model, x0, steps=steps, record=True).recorded_trajectory().clone()


def _round_one(ctx: PairContext) -> None:
    """``round-1``: every chain's round 1 (the 1-RF, evaluated once) and round 1's couplings."""
    cfg = ctx.cfg
    models = ctx.models("flow-1rf")
    flow = ctx.store.load("flow-1rf", models=False)
    assert flow is not None  # ctx.models checked it
    ctx.bar.set_description("evaluate the 1-RF (round 1 of every chain)")
    metrics = [
        evaluate_chain_model(m, d, many_steps=cfg.many_steps)
        for m, d in zip(models, ctx.draws, strict=True)
    ]
    g = torch.Generator().manual_seed(cfg.seed + INDEPENDENT_PAIRS_OFFSET)
    indep = IndependentCoupling(ctx.source, ctx.target).sample(cfg.n_pairs, g)
    first = [{"pairs": "independent", **evaluate_coupling(indep, d)} for d in ctx.draws]
    chains = {
        kind: _chain_records(ctx, kind, 1, metrics, first, flow.record["budget"])
        for kind in cfg.chains
    }
    path = _paths(models[0], ctx.draws[0].x0[0][:100], cfg.many_steps)
    paths = {(kind, 1): path for kind in cfg.chains}
    couplings = _couplings(ctx, 1, models)
    ctx.store.save(
        "round-1",
        {"chains": chains, "couplings": couplings},
        tensors=paths_to_tensors(paths),
    )


def _chain_round(ctx: PairContext, kind: str, k: int) -> None:
    """``chain-<kind>-<k>``: round k of a chain, trained from round k - 1 on the pairs round
    k - 1 made, then evaluated (and, on the reflow chain, round k's couplings recorded)."""
    cfg = ctx.cfg
    previous = ctx.models("flow-1rf" if k == 2 else f"chain-{kind}-{k - 1}")
    makers = ctx.pools(k - 1)
    steps = [chain_step(kind, previous[i], makers[i]) for i in range(len(ctx.seeds))]
    j = chain_kinds(cfg).index(kind)
    results = ctx.train(
        20 + 10 * (k - 1) + j,
        [student_from(m, "teacher") for m in previous],
        steps[0].loss,
        [st.pool.sample for st in steps],
        cfg.round_steps,
        f"{kind} chain round {k}",
    )
    models = [r.model.eval() for r in results]
    record: dict[str, Any] = {"chains": [], "couplings": []}
    paths = {}
    if kind in cfg.chains:
        ctx.bar.set_description(f"evaluate {kind} chain k={k}")
        trained_on = [
            {"pairs": f"{st.made.kind} pairs made by round {k - 1}", **evaluate_coupling(st.made.pairs, d)}
            for st, d in zip(steps, ctx.draws, strict=True)
        ]  # fmt: skip
        budget = [
            _budget(cfg.round_steps, cfg.batch_size, cfg.n_pairs, st.made.teacher_nfe,
                    r.wall_seconds + st.made.seconds)
            for st, r in zip(steps, results, strict=True)
        ]  # fmt: skip
        metrics = [
            evaluate_chain_model(m, d, many_steps=cfg.many_steps)
            for m, d in zip(models, ctx.draws, strict=True)
        ]
        record["chains"] = _chain_records(ctx, kind, k, metrics, trained_on, budget)
        paths[(kind, k)] = _paths(models[0], ctx.draws[0].x0[0][:100], cfg.many_steps)
    ctx.keep_models(f"chain-{kind}-{k}", models)
    if kind == "reflow" and k <= cfg.student_rounds:
        record["couplings"] = _couplings(ctx, k, models)
    ctx.store.save(
        f"chain-{kind}-{k}", record, tensors=paths_to_tensors(paths), models={"model": models}
    )


def _student(ctx: PairContext, name: str, k: int, budget: int) -> None:
    """``student-<k>-<name>-<budget>``: one student method of the k-RF at one budget, trained
    for every seed and evaluated on each seed's draws."""
    cfg, spec = ctx.cfg, student(name)
    teachers = ctx.models(teacher_key(k))
    second = ctx.models("baseline-otcfm") if "otcfm" in cfg.baselines else None
    train_steps = cfg.student_budgets()[budget]
    setups = [
        student_setup(
            spec,
            teachers[i],
            maker,
            second_teacher=None if second is None else second[i],
            num_branches=cfg.bdense_branches,
        )
        for i, maker in enumerate(ctx.pools(k))
    ]
    results = ctx.train(
        student_stage(k, cfg.methods.index(name), budget),
        [st.model for st in setups],
        student_loss(spec, num_branches=cfg.bdense_branches),
        [st.pool.sample for st in setups],
        train_steps,
        f"{name} k={k} ({train_steps} steps)",
    )
    ctx.bar.set_description(f"evaluate {name} k={k}")
    steps = sorted({*cfg.eval_steps, spec.nfe})
    exact = (spec.nfe,) if name in cfg.exact_methods else ()
    runs = []
    for s, draws, st, res in zip(ctx.seeds, ctx.draws, setups, results, strict=True):
        metrics = evaluate_student(res.model, draws, steps, exact_steps=exact)
        if spec.restarts:
            restart = [n for n in (1, 2, 4) if cfg.bdense_branches % n == 0]
            metrics["w2_restart"] = evaluate_student(
                res.model, draws, restart, generate=restart_samples
            )["w2"]
        runs.append(
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
    ctx.store.save(f"student-{k}-{name}-{budget}", {"runs": runs})


def run_unit_here(ctx: PairContext, unit: Unit) -> None:
    """Run ``unit`` in this process, stage by stage, skipping the stages the store holds."""
    if unit.kind == "chain":
        for k in range(2, unit.k + 1):
            if not ctx.store.has(f"chain-{unit.name}-{k}"):
                _chain_round(ctx, unit.name, k)
        return
    if ctx.store.has(unit.key):
        return
    if unit.kind == "flow":
        _flow(ctx)
    elif unit.kind == "baseline":
        _baseline(ctx, unit.name)
    elif unit.kind == "round-1":
        _round_one(ctx)
    elif unit.kind == "student":
        _student(ctx, unit.name, unit.k, unit.budget)
    else:
        raise ValueError(f"unknown unit kind {unit.kind!r}")


#: A worker's pair contexts, by (pair, configuration, store folder, run id): the draws and the
#: loaded models are made once per worker, not once per unit. Only the newest run's are kept.
_CONTEXTS: dict[tuple[str, ...], PairContext] = {}


def run_unit(
    source_name: str,
    target_name: str,
    cfg: ExperimentConfig,
    root: str,
    run_id: str,
    unit: Unit,
    threads: int,
    draws: Sequence[EvalDraws] | None = None,
) -> str:
    """Run ``unit`` of one pair in a worker process, keeping its stages in the store at ``root``
    (``threads`` torch threads; the worker's setting is restored). ``draws``: the pair's
    evaluation draws as the parent made them (else made here). Returns the unit's key."""
    key = (source_name, target_name, json.dumps(cfg.to_dict(), sort_keys=True), root, run_id)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        store = StageStore(Path(root), run_id)
        _CONTEXTS[key] = PairContext(source_name, target_name, cfg, store, draws=draws)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run_unit_here(_CONTEXTS[key], unit)
    finally:
        torch.set_num_threads(previous)
    return unit.key
