"""``results.json`` of ``bezkit experiment``: its schema, one atomic writer, and every reader.

Schema (``schema_version`` 2)::

    {"schema_version": 2, "command", "date", "machine", "config", "wall_seconds",
     "experiments": [Experiment]}
    Experiment = {"source", "target", "data", "seeds": [s], "w2_estimator", "n_eval",
                  "eval_draws" (per seed), "noise_floor": [per seed and draw, seed-major],
                  "source_noise_floor": [..], "noise_floor_by_seed": [[per draw] per seed],
                  "source_noise_floor_by_seed": [[..]], "runs": [Run], "chains": [ChainRound],
                  "couplings": [Coupling], "wall_seconds"}
    Run        = {"method", "k" (None for the OT baselines), "seed",
                  "metrics": {"w2": {"<steps>": [per draw]}, "w2_exact": {...},
                              "w2_restart": {...} (B-DENSE restart sampler)},
                  "final_loss", "budget": Budget}
    ChainRound = {"chain", "k", "seed",
                  "metrics": {"w2": {"1": [..], "<many>": [..]}, "w2_adaptive": [..] (dopri5),
                              "nfe_adaptive": [..], "reverse_x0_w2": [..],
                              "straightness": [..], "transport_cost": [..],
                              "crossings_per_trajectory": [..]},
                  "trained_on": {"pairs", "x0_w2": [..], "x1_w2": [..], "transport_cost",
                                 "segment_crossing_fraction"},
                  "budget": Budget}
    Coupling   = {"coupling", "k", "seed", "x0_w2": [..], "x1_w2": [..], "transport_cost",
                  "segment_crossing_fraction"}
    Budget     = {"steps", "batch_size", "pairs", "teacher_nfe_per_pair", "teacher_nfe",
                  "wall_seconds"}

Every per-draw list holds one value per evaluation draw of the record's seed (each seed has its
own draws); readers average the draws of a seed and give
:class:`~bezkit.experiments.statistics.Interval` over seeds (mean and 95% t-interval). A student
method has one run per seed and student budget (``budget.steps``); readers take ``budget`` (the
optimiser steps), by default the smallest (:func:`student_budgets`).
A chain round's ``trained_on`` are the pairs that round was *trained on* (made by round k - 1);
what round k *makes* is its own ``metrics`` (X1 side: ``w2`` at many steps; X0 side:
``reverse_x0_w2``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from bezkit.experiments.protocol import BASELINE_METHODS, STUDENTS, paired_baseline
from bezkit.experiments.statistics import Interval, paired_difference, seed_means, t_interval
from bezkit.files.atomic import write_json

__all__ = [
    "BASELINES",
    "SCHEMA_VERSION",
    "Budget",
    "Experiment",
    "Results",
    "baseline_values",
    "budget_table",
    "chain_by_k",
    "chain_difference_by_k",
    "chain_values",
    "coupling_by_k",
    "experiment_label",
    "experiments",
    "format_table",
    "load_results",
    "method_difference",
    "method_values",
    "methods_of",
    "metric_by_k",
    "paired_table",
    "save_results",
    "select_experiment",
    "step_counts",
    "student_budgets",
    "student_rounds",
    "twin_table",
    "w2_by_steps",
]

SCHEMA_VERSION = 2

#: Flows trained once per seed (no reflow round): the OT baselines.
BASELINES: tuple[str, ...] = BASELINE_METHODS


class Budget(TypedDict):
    """What one training of a method cost: optimiser steps and batch size, training pairs, teacher
    evaluations (``teacher_nfe = pairs * teacher_nfe_per_pair``) and wall seconds including the
    generation of the pairs it trained on."""

    steps: int
    batch_size: int
    pairs: int
    teacher_nfe_per_pair: int
    teacher_nfe: int
    wall_seconds: float


class Experiment(TypedDict, total=False):
    """One (source, target) pair of a run: its data, seeds and evaluation settings, the noise floors
    per evaluation draw, the per-seed records of students (``runs``), chain rounds (``chains``)
    and couplings (``couplings``), and the claims read from them (``claims``)."""

    source: str
    target: str
    data: dict[str, Any]
    seeds: list[int]
    w2_estimator: str
    n_eval: int
    eval_draws: int
    noise_floor: list[float]
    source_noise_floor: list[float]
    runs: list[dict[str, Any]]
    chains: list[dict[str, Any]]
    couplings: list[dict[str, Any]]
    wall_seconds: float
    #: every claim with its raw interval and p-value, Holm-adjusted p-value and verdict per
    #: student budget, and its answer (:func:`bezkit.experiments.claims.claims_record`; derived
    #: from the per-seed records above)
    claims: list[dict[str, Any]]


class Results(TypedDict, total=False):
    """The whole ``results.json`` (schema :data:`SCHEMA_VERSION`): the command, date, machine and
    configuration of the run, its wall time, one :class:`Experiment` per pair and the figure files."""

    schema_version: int
    command: str
    date: str | None
    machine: dict[str, Any]
    config: dict[str, Any]
    wall_seconds: float
    experiments: list[Experiment]
    figures: list[str]


# -- files -----------------------------------------------------------------------------------------


def _check_finite(obj: Any, where: str = "results") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{where} is not finite ({obj}); results.json holds finite numbers only")
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _check_finite(value, f"{where}.{key}")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_finite(value, f"{where}[{i}]")


def save_results(path: str | Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` (schema above) atomically as JSON; a non-finite number is an error."""
    if results.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"results must carry schema_version {SCHEMA_VERSION}")
    _check_finite(results)
    path = Path(path)
    write_json(path, results, indent=1)  # strict JSON: NaN/inf refused
    return path


def load_results(path: str | Path) -> Results:
    """Read a ``results.json`` written by ``bezkit experiment`` (schema version 2)."""
    with open(path) as fh:
        results = json.load(fh)
    if not isinstance(results, dict) or not isinstance(results.get("experiments"), list):
        raise ValueError(f"{path} is not a bezkit experiment results file (no 'experiments' list)")
    version = results.get("schema_version", 1)
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{path} has results schema version {version}; this bezkit reads version "
            f"{SCHEMA_VERSION} (re-run `bezkit experiment`)"
        )
    return results  # type: ignore[return-value]


# -- picking an experiment -------------------------------------------------------------------------


def experiments(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Experiment]:
    """The experiments (one per (source, target)) of a results dict, a list, or one experiment."""
    if isinstance(results, Mapping):
        if "runs" in results:
            return [dict(results)]  # type: ignore[list-item]
        if "experiments" in results:
            return list(results["experiments"])
        raise ValueError("expected a results dict ('experiments') or an experiment dict ('runs')")
    return list(results)  # type: ignore[arg-type]


def experiment_label(exp: Mapping[str, Any]) -> str:
    """``"source -> target"``."""
    return f"{exp['source']} -> {exp['target']}"


def select_experiment(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    source: str | None = None,
    target: str | None = None,
) -> Experiment:
    """The experiment of ``(source, target)`` (``None`` matches anything; the first match)."""
    exps = experiments(results)
    for exp in exps:
        if source in (None, exp["source"]) and target in (None, exp["target"]):
            return exp
    have = ", ".join(experiment_label(e) for e in exps) or "none"
    raise KeyError(f"no experiment {source} -> {target}; the results have: {have}")


def _one(results: Any) -> Experiment:
    exps = experiments(results)
    if len(exps) != 1:
        raise ValueError(
            f"the results hold {len(exps)} experiments; pick one with select_experiment(...)"
        )
    return exps[0]


# -- students and baselines ------------------------------------------------------------------------


def methods_of(results: Any, *, baselines: bool = True) -> list[str]:
    """The methods in the order they were run (the OT baselines last, or dropped)."""
    exp = _one(results)
    names = list(dict.fromkeys(r["method"] for r in exp["runs"]))
    per_round = [m for m in names if m not in BASELINES]
    return per_round + ([m for m in names if m in BASELINES] if baselines else [])


def student_rounds(results: Any) -> list[int]:
    """The rounds k at which students were trained, sorted."""
    return sorted({int(r["k"]) for r in _one(results)["runs"] if r["k"] is not None})


def step_counts(results: Any, method: str | None = None) -> list[int]:
    """The Euler step counts runs (of ``method``) were evaluated at, sorted."""
    exp = _one(results)
    runs = [r for r in exp["runs"] if method in (None, r["method"])]
    return sorted({int(s) for r in runs for s in r["metrics"]["w2"]})


def student_budgets(results: Any) -> list[int]:
    """The students' budgets (optimiser steps of one training), increasing; ``[]`` without
    students."""
    exp = _one(results)
    return sorted({int(r["budget"]["steps"]) for r in exp["runs"] if r["k"] is not None})


def _runs(
    exp: Experiment, method: str, k: int | None, budget: int | None = None
) -> list[dict[str, Any]]:
    if method not in BASELINES and budget is None:
        budgets = student_budgets(exp)
        budget = budgets[0] if budgets else None
    by_seed = {
        r["seed"]: r
        for r in exp["runs"]
        if r["method"] == method
        and (method in BASELINES or (r["k"] == k and r["budget"]["steps"] == budget))
    }
    missing = [s for s in exp["seeds"] if s not in by_seed]
    if missing:
        at = "" if method in BASELINES else f", {budget} steps"
        raise KeyError(f"no run of {method} at k={k}{at} for seed(s) {missing}")
    return [by_seed[s] for s in exp["seeds"]]


def method_values(
    results: Any,
    method: str,
    k: int | None,
    steps: int | None = None,
    *,
    field: str = "w2",
    budget: int | None = None,
) -> list[list[float]]:
    """Per seed (in the experiment's seed order), per draw: ``field`` (``w2``, ``w2_exact``,
    ``w2_restart``) of ``method`` at round ``k`` and ``steps`` (default: the method's own NFE),
    trained for ``budget`` optimiser steps (default the smallest student budget; ignored for the
    OT baselines)."""
    exp = _one(results)
    if steps is None:
        steps = STUDENTS[method].nfe if method in STUDENTS else 1
    out = []
    for r in _runs(exp, method, k, budget):
        table = r["metrics"].get(field, {})
        if str(steps) not in table:
            raise KeyError(
                f"{method} (k={k}) has no {field} at {steps} steps; have {sorted(table, key=int)}"
            )
        out.append([float(v) for v in table[str(steps)]])
    return out


def metric_by_k(
    results: Any,
    steps: int | None = None,
    *,
    methods: Iterable[str] | None = None,
    field: str = "w2",
    budget: int | None = None,
) -> dict[str, dict[int, Interval]]:
    """``{method: {k: Interval}}`` of W2 at ``steps`` (default each method's own NFE) and student
    ``budget`` (default the smallest)."""
    exp = _one(results)
    wanted = methods_of(exp, baselines=False) if methods is None else list(methods)
    out: dict[str, dict[int, Interval]] = {}
    for m in wanted:
        for k in student_rounds(exp):
            try:
                vals = method_values(exp, m, k, steps, field=field, budget=budget)
            except KeyError:
                continue
            out.setdefault(m, {})[k] = t_interval(seed_means(vals))
    return out


def baseline_values(results: Any, steps: int | None = None) -> dict[str, Interval]:
    """``{baseline: Interval}`` of the OT baselines' W2 at ``steps`` (default one step)."""
    exp = _one(results)
    names = [m for m in methods_of(exp) if m in BASELINES]
    return {m: t_interval(seed_means(method_values(exp, m, None, steps or 1))) for m in names}


def w2_by_steps(
    results: Any, k: int | None = None, *, methods: Iterable[str] | None = None
) -> dict[str, dict[int, Interval]]:
    """``{"<method> (k=K)": {steps: Interval}}`` of round ``k`` (default the last), baselines
    included: the input of a W2-against-steps plot."""
    exp = _one(results)
    k = max(student_rounds(exp)) if k is None else int(k)
    wanted = methods_of(exp) if methods is None else list(methods)
    out: dict[str, dict[int, Interval]] = {}
    for m in wanted:
        kk = None if m in BASELINES else k
        label = m if m in BASELINES else f"{m} (k={k})"
        for s in step_counts(exp, m):
            vals = method_values(exp, m, kk, s)
            out.setdefault(label, {})[s] = t_interval(seed_means(vals))
    return out


def paired_table(
    results: Any,
    k: int,
    *,
    methods: Iterable[str] | None = None,
    field: str = "w2",
    budget: int | None = None,
) -> dict[str, Interval]:
    """``{method: Interval of (method - baseline)}`` at round ``k``, equal NFE and student
    ``budget`` (default the smallest), the baseline being plain k-RF distillation with as many
    steps (:func:`paired_baseline`; uniform-t students have none and are left out): same seeds,
    same evaluation draws. Negative means the method is better (lower W2)."""
    exp = _one(results)
    wanted = methods_of(exp, baselines=False) if methods is None else list(methods)
    out = {}
    for m in wanted:
        base = paired_baseline(m) if m in STUDENTS else None
        if base is None or m == base:
            continue
        try:
            a = method_values(exp, m, k, field=field, budget=budget)
            b = method_values(exp, base, k, STUDENTS[m].nfe, field=field, budget=budget)
        except KeyError:
            continue
        out[m] = paired_difference(a, b)
    return out


def twin_table(results: Any, k: int, *, budget: int | None = None) -> dict[str, Interval]:
    """``{bezier method: Interval of (method - its linear twin)}``: the curve against the line on
    the same pairs, time distribution, steps and budget (one difference; student ``budget``
    default the smallest)."""
    exp = _one(results)
    out = {}
    for m in methods_of(exp, baselines=False):
        twin = STUDENTS[m].linear_twin if m in STUDENTS else None
        if twin is None:
            continue
        try:
            a = method_values(exp, m, k, budget=budget)
            b = method_values(exp, twin, k, STUDENTS[m].nfe, budget=budget)
        except KeyError:
            continue
        out[m] = paired_difference(a, b)
    return out


def method_difference(
    results: Any,
    method: str,
    other: str,
    k: int,
    steps: int | None = None,
    *,
    field: str = "w2",
    other_field: str | None = None,
    budget: int | None = None,
) -> Interval:
    """Interval of ``method - other`` at round ``k``, ``steps`` (default ``method``'s own NFE) and
    student ``budget``, paired by seed and evaluation draw (e.g. multi-teacher cubic against
    quadratic); ``field`` of ``method`` against ``other_field`` (default the same) of ``other``
    (e.g. B-DENSE's ``w2_restart`` against plain distillation's ``w2``)."""
    exp = _one(results)
    if steps is None:
        steps = STUDENTS[method].nfe if method in STUDENTS else 1
    return paired_difference(
        method_values(exp, method, k, steps, field=field, budget=budget),
        method_values(exp, other, k, steps, field=other_field or field, budget=budget),
    )


def budget_table(results: Any) -> dict[str, dict[str, float]]:
    """``{"<method or chain>": {"steps", "pairs", "teacher_nfe", "wall_seconds"}}``: per method
    the budget of one training (means over seeds and rounds; wall seconds include generating the
    pairs the method trains on)."""
    exp = _one(results)
    rows: dict[str, list[dict[str, Any]]] = {}
    several = len(student_budgets(exp)) > 1
    for r in exp["runs"]:
        name = r["method"]
        if several and r["k"] is not None:
            name = f"{name} ({r['budget']['steps']} steps)"
        rows.setdefault(name, []).append(r["budget"])
    for c in exp.get("chains", []):
        if c["k"] > 1:
            rows.setdefault(f"{c['chain']} chain round", []).append(c["budget"])
    out = {}
    for name, budgets in rows.items():
        n = len(budgets)
        out[name] = {
            "steps": budgets[0]["steps"],
            "pairs": budgets[0]["pairs"],
            "teacher_nfe": sum(b["teacher_nfe"] for b in budgets) / n,
            "wall_seconds": sum(b["wall_seconds"] for b in budgets) / n,
        }
    return out


# -- chains and couplings --------------------------------------------------------------------------

#: The chain fields :func:`chain_values` knows: label -> how to read it from a chain record.
CHAIN_FIELDS: dict[str, Callable[[Mapping[str, Any]], list[float]]] = {
    "w2_one_step": lambda c: c["metrics"]["w2"]["1"],
    "w2_many_steps": lambda c: c["metrics"]["w2"][max(c["metrics"]["w2"], key=int)],
    "w2_adaptive": lambda c: c["metrics"]["w2_adaptive"],
    "reverse_x0_w2": lambda c: c["metrics"]["reverse_x0_w2"],
    "straightness": lambda c: c["metrics"]["straightness"],
    "crossings_per_trajectory": lambda c: c["metrics"]["crossings_per_trajectory"],
    "trained_on_x0_w2": lambda c: c["trained_on"]["x0_w2"],
    "trained_on_x1_w2": lambda c: c["trained_on"]["x1_w2"],
}


def chain_values(results: Any, chain: str, k: int, field: str) -> list[list[float]]:
    """Per seed, per draw: a chain round's ``field`` (one of :data:`CHAIN_FIELDS`)."""
    exp = _one(results)
    if field not in CHAIN_FIELDS:
        raise KeyError(f"unknown chain field {field!r}; known: {', '.join(CHAIN_FIELDS)}")
    by_seed = {c["seed"]: c for c in exp.get("chains", []) if c["chain"] == chain and c["k"] == k}
    if not by_seed:
        raise KeyError(f"no {chain} chain round {k} in the results")
    return [[float(v) for v in CHAIN_FIELDS[field](by_seed[s])] for s in exp["seeds"]]


def _chain_kinds(exp: Experiment) -> list[str]:
    return list(dict.fromkeys(c["chain"] for c in exp.get("chains", [])))


def chain_by_k(results: Any, field: str = "w2_many_steps") -> dict[str, dict[int, Interval]]:
    """``{chain: {k: Interval}}`` of a chain field across rounds."""
    exp = _one(results)
    out: dict[str, dict[int, Interval]] = {}
    for kind in _chain_kinds(exp):
        ks = sorted({c["k"] for c in exp["chains"] if c["chain"] == kind})
        out[kind] = {k: t_interval(seed_means(chain_values(exp, kind, k, field))) for k in ks}
    return out


def chain_difference_by_k(
    results: Any, field: str = "w2_many_steps", *, baseline: str = "reflow"
) -> dict[str, dict[int, Interval]]:
    """``{chain: {k: Interval of (chain - baseline chain)}}``, paired by seed and draw."""
    exp = _one(results)
    out: dict[str, dict[int, Interval]] = {}
    for kind in _chain_kinds(exp):
        if kind == baseline:
            continue
        ks = sorted({c["k"] for c in exp["chains"] if c["chain"] == kind})
        out[kind] = {
            k: paired_difference(
                chain_values(exp, kind, k, field), chain_values(exp, baseline, k, field)
            )
            for k in ks
        }
    return out


def coupling_by_k(results: Any, side: str = "x1_w2") -> dict[str, dict[int, Interval]]:
    """``{coupling: {k: Interval}}`` of the students' pools: ``x0_w2`` or ``x1_w2`` (both sides
    of every coupling), ``transport_cost`` or ``segment_crossing_fraction``."""
    exp = _one(results)
    groups: dict[tuple[str, int], dict[int, Any]] = {}
    for c in exp.get("couplings", []):
        groups.setdefault((c["coupling"], c["k"]), {})[c["seed"]] = c[side]
    out: dict[str, dict[int, Interval]] = {}
    for (name, k), by_seed in groups.items():
        vals = [by_seed[s] for s in exp["seeds"] if s in by_seed]
        per_seed = seed_means(vals) if isinstance(vals[0], list) else [float(v) for v in vals]
        out.setdefault(name, {})[k] = t_interval(per_seed)
    return {m: dict(sorted(v.items())) for m, v in out.items()}


# -- tables ----------------------------------------------------------------------------------------


def format_table(
    rows: Mapping[Any, Mapping[str, Interval | float | str]],
    *,
    digits: int = 3,
    row_label: str = "k",
    columns: Sequence[str] | None = None,
) -> str:
    """A Markdown table of ``{row: {column: value}}``; an :class:`Interval` prints as
    ``mean [low, high]``, a float rounded to ``digits``; missing cells are empty."""
    cols = (
        list(columns)
        if columns is not None
        else list(dict.fromkeys(c for r in rows.values() for c in r))
    )

    def cell(v: Any) -> str:
        if isinstance(v, Interval):
            return v.format(digits)
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join([row_label, *cols]) + " |", "|" + " --- |" * (len(cols) + 1)]
    for key, row in rows.items():
        lines.append(
            "| " + " | ".join([str(key), *(cell(row[c]) if c in row else "" for c in cols)]) + " |"
        )
    return "\n".join(lines)
