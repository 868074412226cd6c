"""The experiment's PNG figures: chains across rounds with interval bands, paired differences
with error bars, the few-step comparison at equal NFE, and the chains' trajectories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes

from bezkit.experiments.protocol import STUDENTS
from bezkit.experiments.results import (
    chain_by_k,
    experiments,
    metric_by_k,
    paired_table,
    select_experiment,
    student_rounds,
    twin_table,
)
from bezkit.plot.results import plot_few_step, plot_intervals_by_k, plot_paired_differences
from bezkit.plot.trajectories import plot_trajectories

__all__ = ["few_step_series", "plot_chains", "write_figures"]


def _slug(exp: Mapping[str, Any]) -> str:
    """``source-to-target`` with data files reduced to their stem (``/a/b/mine.csv`` -> ``mine``)."""
    return f"{Path(exp['source']).stem}-to-{Path(exp['target']).stem}"


def few_step_series(exp: Mapping[str, Any], k: int) -> dict[str, dict[int, Any]]:
    """``{family: {NFE: Interval}}`` of the students made for 1, 2 and 4 steps at round ``k``:
    plain distillation, linear with a real endpoint, quadratic (tangent / endpoint / secant target), each
    at its own NFE (and B-DENSE with its restart sampler)."""
    by = metric_by_k(exp)
    families = {
        "k-RF distill (linear)": ("rf-distill", "rf-distill-2", "rf-distill-4"),
        "linear, real endpoint": ("anchored-distill", "anchored-distill-2", "anchored-distill-4"),
        "quadratic, tangent target": ("bezier-quadratic-2-tangent", "bezier-quadratic-4-tangent"),
        "quadratic, endpoint target": (
            "bezier-quadratic-2-endpoint",
            "bezier-quadratic-4-endpoint",
        ),
        "quadratic, secant target": ("bezier-quadratic-2-secant", "bezier-quadratic-4-secant"),
    }
    out: dict[str, dict[int, Any]] = {}
    for label, names in families.items():
        pts = {STUDENTS[m].nfe: by[m][k] for m in names if m in by and k in by[m]}
        if pts:
            out[label] = pts
    restart = metric_by_k(exp, 2, field="w2_restart")
    for m in restart:
        pts = {}
        for n in (1, 2, 4):
            vals = metric_by_k(exp, n, field="w2_restart", methods=[m])
            if m in vals and k in vals[m]:
                pts[n] = vals[m][k]
        if pts:
            out[f"{m} (restart sampler)"] = pts
    return out


def plot_chains(
    results: Any,
    field: str = "w2_many_steps",
    *,
    ax: Axes | None = None,
    chains: Sequence[str] | None = None,
    noise_floor: bool = True,
    title: str | None = None,
) -> Axes:
    """A chain field (see :data:`bezkit.experiments.results.CHAIN_FIELDS`) of one experiment
    against the round ``k``, one band (95% interval over seeds) per chain; the target noise floor
    for the W2 fields."""
    exp = select_experiment(results)
    series = chain_by_k(exp, field)
    if chains is not None:
        series = {c: series[c] for c in chains if c in series}
    floor = None
    if noise_floor and field in ("w2_many_steps", "w2_one_step"):
        floor = sum(exp["noise_floor"]) / len(exp["noise_floor"])
    label = field.replace("_", " ")
    return plot_intervals_by_k(series, ax=ax, ylabel=label, reference=floor, title=title)


def _save(fig: plt.Figure, out_dir: Path, name: str, names: list[str]) -> None:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=90)
    plt.close(fig)
    names.append(name)


def _experiment_figures(
    exp: Mapping[str, Any], paths: Mapping[tuple[str, int], torch.Tensor], out_dir: Path
) -> list[str]:
    slug, names = _slug(exp), cast(list[str], [])
    floor = sum(exp["noise_floor"]) / len(exp["noise_floor"])
    if exp.get("chains"):
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
        panels = [
            ("w2_many_steps", "W2, many Euler steps (X1 side it makes)", floor),
            ("w2_one_step", "W2, one Euler step", floor),
            ("reverse_x0_w2", "W2 of its reverse-ODE X0 to the source", None),
            ("straightness", "straightness S", None),
        ]
        for ax, (field, label, ref) in zip(axes.flat, panels, strict=True):
            plot_intervals_by_k(
                chain_by_k(exp, field), ax=ax, ylabel=label, reference=ref, title=label
            )
        fig.suptitle(f"{exp['source']} -> {exp['target']}: chains (mean, 95% interval over seeds)")
        _save(fig, out_dir, f"{slug}-chains.png", names)
    ks = student_rounds(exp)
    if ks:
        k = ks[-1]
        paired = paired_table(exp, k)
        twins = twin_table(exp, k)
        fig, axes = plt.subplots(
            1, 2, figsize=(13, 0.45 * max(len(paired), len(twins), 4) + 1.8), squeeze=False
        )
        plot_paired_differences(
            paired, ax=axes[0][0], title=f"minus k-RF distillation at equal NFE (k={k})"
        )
        plot_paired_differences(twins, ax=axes[0][1], title=f"Bezier minus its linear twin (k={k})")
        _save(fig, out_dir, f"{slug}-paired-differences.png", names)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        plot_few_step(
            few_step_series(exp, k),
            ax=ax,
            reference=floor,
            title=f"few-step students at equal NFE (k={k})",
        )
        _save(fig, out_dir, f"{slug}-few-step.png", names)
    if paths:
        kinds = list(dict.fromkeys(kind for kind, _ in paths))
        rounds = sorted({k for _, k in paths})
        # zoom to the data: a few far-out points must not shrink every panel
        lim = max(float(torch.quantile(p.abs().flatten(), 0.995)) for p in paths.values()) * 1.1
        fig, axes = plt.subplots(
            len(kinds), len(rounds), figsize=(2.6 * len(rounds), 2.6 * len(kinds)), squeeze=False
        )
        for i, kind in enumerate(kinds):
            for j, k in enumerate(rounds):
                ax = axes[i][j]
                plot_trajectories(
                    paths[(kind, k)],
                    ax=ax,
                    max_paths=100,
                    show_ends=True,
                    title=f"{kind} chain, k={k}",
                    lim=lim,
                )
                if ax.get_legend() is not None:
                    ax.get_legend().remove()
                ax.set_xticks([])
                ax.set_yticks([])
                ax.title.set_fontsize(8)
        _save(fig, out_dir, f"{slug}-chain-trajectories.png", names)
    return names


def write_figures(
    results: Mapping[str, Any],
    paths: list[Mapping[tuple[str, int], torch.Tensor]],
    out_dir: str | Path,
) -> list[str]:
    """Write every experiment's figures into ``out_dir``; returns the file names."""
    out = Path(out_dir)
    names: list[str] = []
    for exp, p in zip(experiments(results), paths, strict=True):
        names += _experiment_figures(exp, p, out)
    return names
