"""Builders for the lessons (``notebooks/``): the pretrained lesson flows, and the experiment's
``results.json`` turned into the plain dicts that :mod:`bezkit.plot` and :mod:`bezkit.widgets` draw.

**Lesson checkpoints.** Lessons 01 to 06 share three small 2D flows between the 8 Gaussians and the
two moons, stored as ``data/checkpoints/8gaussians-moons-{1,2,3}rf`` (``.safetensors`` + ``.json``,
written by :func:`bezkit.training.model_io.save_model`). Their recipes (seeded, deterministic on a
given machine with one torch thread):

- ``1rf``: ``new_mlp(2, hidden=128, seed=0)`` trained with ``FlowMatchingLoss()`` (linear path,
  tangent target, uniform t) on ``IndependentCoupling(8gaussians, moons)``,
  ``TrainConfig(steps=2000, batch_size=256, lr=3e-3, seed=0)``, no EMA;
- ``{k}rf`` for k = 2, 3: ``reflow_round(previous, 8gaussians, TrainConfig(steps=800,
  batch_size=256, lr=1e-3, seed=k), k=k, n_pairs=5000, teacher_steps=100, pair_seed=k)``.

:func:`lesson_flows` loads them when they exist and trains them otherwise (or when asked);
:func:`make_lesson_checkpoints` (``python scripts/make_lesson_checkpoints.py``) regenerates them.

**Experiment results.** ``bezkit experiment`` writes ``results.json``: ``{"config", "experiments":
[{"source", "target", "noise_floor", "runs": [{"method", "k", "metrics": {"w2": {"1": ..}, ..}}],
"couplings": [...], "error_accumulation": {...}}]}``. :func:`metric_by_k`, :func:`baseline_values`,
:func:`w2_by_steps` and :func:`coupling_by_k` read it; :func:`lesson_results` loads the committed file
or, when it is absent, runs a small seeded experiment of the same format (:func:`quick_results`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bezkit.couplings.independent import IndependentCoupling
from bezkit.data.toy2d import get_sampler
from bezkit.methods.flow import new_mlp
from bezkit.methods.reflow import ReflowRound, reflow_round
from bezkit.training.config import TrainConfig
from bezkit.training.model_io import load_model, save_model
from bezkit.training.objectives import FlowMatchingLoss
from bezkit.training.trainer import TrainResult, train

__all__ = [
    "BASELINES",
    "LESSON_PAIR",
    "RUN_METRICS",
    "baseline_values",
    "checkpoint_name",
    "coupling_by_k",
    "default_checkpoint_dir",
    "error_table",
    "experiment_label",
    "experiments",
    "format_table",
    "lesson_flows",
    "lesson_results",
    "load_results",
    "make_lesson_checkpoints",
    "methods_of",
    "metric_by_k",
    "metric_value",
    "quick_config",
    "quick_results",
    "reflow_config",
    "rf1_config",
    "select_experiment",
    "step_counts",
    "train_lesson_1rf",
    "train_lesson_reflow",
    "w2_by_steps",
]

#: The (source, target) of the lesson checkpoints.
LESSON_PAIR: tuple[str, str] = ("8gaussians", "moons")

#: Methods of the experiment that are trained once, not per reflow round (reported at k = 1).
BASELINES: tuple[str, ...] = ("otcfm", "full-ot")

#: Scalar metrics of a run: ``run["metrics"][name]`` (or ``run[name]`` for the last two).
RUN_METRICS: tuple[str, ...] = (
    "straightness",
    "normalised_straightness",
    "curvature",
    "transport_cost",
    "path_energy",
    "crossing_pairs",
    "crossing_fraction",
    "crossings_per_trajectory",
    "train_seconds",
    "final_loss",
)


# -- the lesson checkpoints -----------------------------------------------------------------------


def checkpoint_name(k: int, pair: tuple[str, str] = LESSON_PAIR) -> str:
    """``8gaussians-moons-{k}rf``: the file stem of the lesson's k-RF."""
    return f"{pair[0]}-{pair[1]}-{k}rf"


def default_checkpoint_dir() -> Path:
    """``data/checkpoints`` of the checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[1] / "data" / "checkpoints"


def rf1_config(seed: int = 0) -> TrainConfig:
    """The 1-RF's training configuration (lesson 01's recipe)."""
    return TrainConfig(steps=2000, batch_size=256, lr=3e-3, seed=seed, progress=False, device="cpu")


def reflow_config(k: int, seed: int = 0) -> TrainConfig:
    """The k-RF's training configuration (lesson 02's recipe), k >= 2."""
    return TrainConfig(
        steps=800, batch_size=256, lr=1e-3, seed=seed + k, progress=False, device="cpu"
    )


def train_lesson_1rf(seed: int = 0) -> TrainResult:
    """Train the lesson 1-RF from scratch (the recipe of the module docstring)."""
    source, target = (get_sampler(name) for name in LESSON_PAIR)
    return train(
        new_mlp(2, hidden=128, seed=seed),
        FlowMatchingLoss(),
        IndependentCoupling(source, target).sample,
        rf1_config(seed),
    )


def train_lesson_reflow(previous: nn.Module, k: int, seed: int = 0) -> ReflowRound:
    """Train the lesson k-RF (k >= 2) on 5000 pairs of the (k-1)-RF ``previous``."""
    return reflow_round(
        previous,
        get_sampler(LESSON_PAIR[0]),
        reflow_config(k, seed),
        k=k,
        n_pairs=5000,
        teacher_steps=100,
        pair_seed=seed + k,
    )


def _recipe(k: int, seed: int) -> dict[str, Any]:
    if k == 1:
        return {
            "method": "1-RF",
            "pair": list(LESSON_PAIR),
            "model": f"new_mlp(2, hidden=128, seed={seed})",
            "loss": "FlowMatchingLoss() (linear path, tangent target, uniform t)",
            "coupling": "IndependentCoupling(8gaussians, moons)",
            "train": rf1_config(seed).to_dict(),
        }
    return {
        "method": f"{k}-RF",
        "pair": list(LESSON_PAIR),
        "teacher": checkpoint_name(k - 1),
        "reflow_round": {"k": k, "n_pairs": 5000, "teacher_steps": 100, "pair_seed": seed + k},
        "train": reflow_config(k, seed).to_dict(),
    }


def _single_thread(fn: Callable[[], Any]) -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


def lesson_flows(
    checkpoints: str | Path | None = None,
    *,
    rounds: int = 3,
    retrain: bool = False,
    seed: int = 0,
    verbose: bool = True,
) -> dict[int, nn.Module]:
    """The lesson's k-RFs for k = 1..``rounds``: ``{k: model}`` (eval mode, CPU).

    Each one is loaded from ``checkpoints`` (default :func:`default_checkpoint_dir`) when its file
    exists and ``retrain`` is False; otherwise it is trained by its recipe (a few seconds each; a
    round whose teacher was trained is trained too, so a mix never pairs a new teacher with an old
    student). Prints one line per model when ``verbose``."""
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    folder = Path(checkpoints) if checkpoints is not None else default_checkpoint_dir()
    flows: dict[int, nn.Module] = {}
    trained_any = False
    for k in range(1, rounds + 1):
        path = folder / checkpoint_name(k)
        if not retrain and not trained_any and path.with_suffix(".safetensors").exists():
            flows[k] = load_model(path)[0]
            if verbose:
                print(f"loaded the {k}-RF from {path.name}")
            continue
        trained_any = True
        t0 = time.perf_counter()
        if k == 1:
            model = _single_thread(lambda: train_lesson_1rf(seed).final_model)
        else:
            prev = flows[k - 1]
            model = _single_thread(lambda prev=prev, k=k: train_lesson_reflow(prev, k, seed).model)
        flows[k] = model.eval()
        if verbose:
            print(f"trained the {k}-RF in {time.perf_counter() - t0:.1f} s")
    return flows


def make_lesson_checkpoints(
    out_dir: str | Path | None = None,
    *,
    rounds: int = 3,
    seed: int = 0,
    overwrite: bool = False,
    verbose: bool = True,
) -> list[Path]:
    """Train the lesson k-RFs (k = 1..``rounds``) by their recipes on one torch thread and save
    them with :func:`bezkit.training.model_io.save_model`; returns the ``.safetensors`` paths.

    The metadata records the recipe and the training losses (lesson 01 plots them). Training is
    seeded, so running this twice on one machine writes the same tensors."""
    folder = Path(out_dir) if out_dir is not None else default_checkpoint_dir()
    written: list[Path] = []
    previous: nn.Module | None = None
    for k in range(1, rounds + 1):
        t0 = time.perf_counter()
        if k == 1:
            res = _single_thread(lambda: train_lesson_1rf(seed))
            model, losses = res.final_model, res.losses
        else:
            rnd = _single_thread(lambda k=k, p=previous: train_lesson_reflow(p, k, seed))
            model, losses = rnd.model, rnd.result.losses
        seconds = time.perf_counter() - t0
        meta = {
            "recipe": _recipe(k, seed),
            "regenerate": "python scripts/make_lesson_checkpoints.py",
            "losses": [round(float(v), 6) for v in losses],
        }
        path = save_model(folder / checkpoint_name(k), model, meta, overwrite=overwrite)
        written.append(path)
        if verbose:
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB) in {seconds:.1f} s")
        previous = model.eval()
    return written


# -- results.json -> plain dicts ------------------------------------------------------------------


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` written by ``bezkit experiment``."""
    with open(path) as fh:
        results = json.load(fh)
    if not isinstance(results, dict) or not isinstance(results.get("experiments"), list):
        raise ValueError(f"{path} is not a bezkit experiment results file (no 'experiments' list)")
    return results


def experiments(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The experiment dicts (one per (source, target)) of a results dict, a list of experiments,
    or a single experiment."""
    if isinstance(results, Mapping):
        if "runs" in results:
            return [dict(results)]
        if "experiments" in results:
            return list(results["experiments"])
        raise ValueError("expected a results dict ('experiments') or an experiment dict ('runs')")
    return list(results)


def experiment_label(exp: Mapping[str, Any]) -> str:
    """``"source -> target"``."""
    return f"{exp['source']} -> {exp['target']}"


def select_experiment(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    source: str | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """The experiment of ``(source, target)`` (``None`` matches anything; the first match)."""
    exps = experiments(results)
    for exp in exps:
        if source in (None, exp["source"]) and target in (None, exp["target"]):
            return exp
    have = ", ".join(experiment_label(e) for e in exps) or "none"
    raise KeyError(f"no experiment {source} -> {target}; the results have: {have}")


def _one(results: Any) -> dict[str, Any]:
    exps = experiments(results)
    if len(exps) != 1:
        raise ValueError(
            f"the results hold {len(exps)} experiments; pick one with select_experiment(...)"
        )
    return exps[0]


def step_counts(exp: Mapping[str, Any]) -> list[int]:
    """The Euler step counts every run was evaluated at, sorted."""
    return sorted({int(s) for r in exp["runs"] for s in r["metrics"]["w2"]})


def methods_of(exp: Mapping[str, Any], *, baselines: bool = True) -> list[str]:
    """The methods of an experiment in the order they were run (OT baselines last or dropped)."""
    names = list(dict.fromkeys(r["method"] for r in exp["runs"]))
    per_round = [m for m in names if m not in BASELINES]
    return per_round + ([m for m in names if m in BASELINES] if baselines else [])


def metric_value(
    run: Mapping[str, Any], metric: str = "w2", steps: int | str | None = None
) -> float:
    """One number of one run: ``w2`` / ``nfe`` at ``steps`` Euler steps (default: the most), or a
    scalar of :data:`RUN_METRICS`."""
    m = run["metrics"]
    if metric in ("w2", "nfe"):
        table = m[metric]
        key = str(max(int(s) for s in table)) if steps is None else str(int(steps))
        if key not in table:
            raise KeyError(
                f"{metric} was not evaluated at {key} steps; have {sorted(table, key=int)}"
            )
        return float(table[key])
    if metric in m:
        return float(m[metric])
    if metric in run and metric in RUN_METRICS:
        return float(run[metric])
    raise KeyError(f"unknown metric {metric!r}; use 'w2', 'nfe' or one of {', '.join(RUN_METRICS)}")


def metric_by_k(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    metric: str | Callable[[Mapping[str, Any]], float] = "w2",
    steps: int | str | None = None,
    *,
    methods: Iterable[str] | None = None,
    baselines: bool = False,
) -> dict[str, dict[int, float]]:
    """``{method: {k: value}}``, the input of :func:`bezkit.plot.plot_metric_vs_k`.

    ``results`` is one experiment dict (or a results dict holding exactly one). ``metric`` is a
    name (see :func:`metric_value`; ``steps`` picks the step count of ``w2`` / ``nfe``, default the
    most) or a function of a run. The OT baselines, trained once, are left out unless
    ``baselines`` (then they appear at k = 1 only; :func:`baseline_values` gives them as numbers).
    ``methods`` keeps only those methods, in that order."""
    exp = _one(results)
    value = metric if callable(metric) else (lambda r: metric_value(r, metric, steps))
    wanted = None if methods is None else list(methods)
    out: dict[str, dict[int, float]] = {}
    for r in exp["runs"]:
        if r["method"] in BASELINES and not baselines:
            continue
        if wanted is not None and r["method"] not in wanted:
            continue
        out.setdefault(r["method"], {})[int(r["k"])] = value(r)
    if wanted is not None:
        out = {m: out[m] for m in wanted if m in out}
    return {m: dict(sorted(v.items())) for m, v in out.items()}


def baseline_values(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    metric: str = "w2",
    steps: int | str | None = None,
) -> dict[str, float]:
    """``{baseline: value}`` for the OT baselines in the results (``otcfm``, ``full-ot``)."""
    exp = _one(results)
    return {
        r["method"]: metric_value(r, metric, steps) for r in exp["runs"] if r["method"] in BASELINES
    }


def w2_by_steps(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    k: int | None = None,
    *,
    methods: Iterable[str] | None = None,
    baselines: bool = True,
) -> dict[str, dict[int, float]]:
    """``{"<method> (k=K)": {steps: w2}}`` of round ``k`` (default: the last), the input of
    :func:`bezkit.plot.plot_w2_vs_steps`; the OT baselines are added unless ``baselines=False``."""
    exp = _one(results)
    ks = [int(r["k"]) for r in exp["runs"] if r["method"] not in BASELINES]
    k = max(ks, default=1) if k is None else int(k)
    wanted = None if methods is None else list(methods)
    out: dict[str, dict[int, float]] = {}
    for r in exp["runs"]:
        base = r["method"] in BASELINES
        if (base and not baselines) or (not base and int(r["k"]) != k):
            continue
        if wanted is not None and r["method"] not in wanted and not base:
            continue
        curve = {int(s): float(v) for s, v in r["metrics"]["w2"].items()}
        out[f"{r['method']} (k={r['k']})"] = dict(sorted(curve.items()))
    # the per-round methods first, then the baselines (results.json lists the baselines first)
    return dict(sorted(out.items(), key=lambda kv: kv[0].split(" (")[0] in BASELINES))


def coupling_by_k(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]], field: str = "endpoint_w2"
) -> dict[str, dict[int, float]]:
    """``{coupling: {k: value}}`` of the training pairs themselves (``endpoint_w2``,
    ``transport_cost`` or ``segment_crossing_fraction``)."""
    exp = _one(results)
    out: dict[str, dict[int, float]] = {}
    for c in exp.get("couplings", []):
        out.setdefault(c["coupling"], {})[int(c["k"])] = float(c[field])
    return {m: dict(sorted(v.items())) for m, v in out.items()}


def error_table(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> dict[int, dict[str, float]]:
    """The experiment's error-accumulation table ``{k: {column: W2}}`` (stored in results.json, or
    recomputed with :func:`bezkit.experiments.error_accumulation_table`)."""
    exp = _one(results)
    if "error_accumulation" in exp:
        return {
            int(k): dict(row)
            for k, row in sorted(exp["error_accumulation"].items(), key=lambda kv: int(kv[0]))
        }
    from bezkit.experiments.report import error_accumulation_table

    return error_accumulation_table(exp)


def quick_config(**overrides: Any):
    """A small :class:`~bezkit.experiments.ExperimentConfig` (8gaussians -> moons, K = 2, every
    default method) that runs in about 20 s on one CPU thread: lesson 05's fallback when no
    results file is committed."""
    from bezkit.experiments.config import ExperimentConfig

    base = dict(
        hidden=64,
        batch_size=128,
        flow_steps=400,
        round_steps=150,
        n_pairs=1000,
        teacher_steps=40,
        full_ot_points=512,
        n_eval=500,
        m_crossings=80,
        eval_steps=(1, 2, 4, 8, 40),
        progress=False,
    )
    base.update(overrides)
    return ExperimentConfig.quick(**base)


def quick_results(cfg: Any = None) -> dict[str, Any]:
    """Run ``cfg`` (default :func:`quick_config`) on one torch thread and return a dict of the
    ``results.json`` format (no files written, no figures)."""
    from bezkit.experiments.report import error_accumulation_table
    from bezkit.experiments.run import machine_info
    from bezkit.experiments.toy2d import run_experiment_pairs

    cfg = quick_config() if cfg is None else cfg
    t0 = time.perf_counter()
    exps = _single_thread(lambda: run_experiment_pairs(cfg))
    for exp in exps:
        exp.pop("paths", None)
        exp["error_accumulation"] = {str(k): v for k, v in error_accumulation_table(exp).items()}
    return {
        "command": "bezkit.lessons.quick_results()",
        "date": None,
        "machine": machine_info(),
        "config": cfg.to_dict(),
        "wall_seconds": time.perf_counter() - t0,
        "experiments": exps,
    }


def lesson_results(path: str | Path, *, config: Any = None, verbose: bool = True) -> dict[str, Any]:
    """``results.json`` at ``path`` when it exists, else :func:`quick_results` of ``config``."""
    path = Path(path)
    if path.exists():
        results = load_results(path)
        if verbose:
            print(f"loaded {path.name}: {results.get('command', '?')}")
        return results
    if verbose:
        print(f"{path.name} not found: running a small experiment instead")
    results = quick_results(config)
    if verbose:
        print(f"ran {results['command']} in {results['wall_seconds']:.0f} s")
    return results


def format_table(
    rows: Mapping[Any, Mapping[str, float]],
    *,
    digits: int = 3,
    row_label: str = "k",
    columns: Sequence[str] | None = None,
) -> str:
    """A Markdown table of ``{row: {column: value}}`` (e.g. :func:`error_table`'s), values rounded
    to ``digits``; missing cells are left empty. Display it with ``IPython.display.Markdown``."""
    cols = (
        list(columns)
        if columns is not None
        else list(dict.fromkeys(c for r in rows.values() for c in r))
    )
    lines = [
        "| " + " | ".join([row_label, *cols]) + " |",
        "|" + " --- |" * (len(cols) + 1),
    ]
    for key, row in rows.items():
        cells = [f"{row[c]:.{digits}f}" if c in row else "" for c in cols]
        lines.append("| " + " | ".join([str(key), *cells]) + " |")
    return "\n".join(lines)
