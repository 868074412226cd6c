"""The experiment's PNG figures: chains across rounds with interval bands, paired differences
with error bars, the few-step comparison at equal NFE, and the chains' trajectories (coloured by
the source mode they start from). Every figure is drawn in :func:`bezkit.plot.style_context`, the
lessons' sizes and fonts."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from bezkit.arrays import to_numpy
from bezkit.experiments.protocol import STUDENTS
from bezkit.experiments.results import (
    chain_by_k,
    experiments,
    metric_by_k,
    paired_table,
    select_experiment,
    student_budgets,
    student_rounds,
    twin_table,
)
from bezkit.files.atomic import atomic_write_bytes
from bezkit.plot.results import plot_few_step, plot_intervals_by_k, plot_paired_differences
from bezkit.plot.style import MODE_COLORS, style_context
from bezkit.plot.trajectories import plot_trajectories, source_modes

__all__ = [
    "data_window",
    "few_step_series",
    "plot_chain_trajectories",
    "plot_chains",
    "write_figures",
]


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
        "quadratic on rf-distill's pairs, secant": (
            "bezier-forward-2-secant",
            "bezier-forward-4-secant",
        ),
        "through the teacher's ODE state, secant": (
            "bezier-state-2-secant",
            "bezier-state-4-secant",
        ),
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


def data_window(
    points: np.ndarray, *, coverage: float = 0.99, pad: float = 0.06
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(xlim, ylim)`` that hold the central ``coverage`` of ``points`` ``(..., 2)`` along each
    axis, plus ``pad`` of the larger range on every side, as a square window (equal scales on
    a square panel): a few far-out points do not shrink the rest."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.shape[0] == 0:
        raise ValueError("data_window needs at least one finite point")
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    tail = (1.0 - coverage) / 2
    lo, hi = np.quantile(pts, [tail, 1.0 - tail], axis=0)
    half = max(float((hi - lo).max()), 1e-9) * (0.5 + pad)
    cx, cy = (lo + hi) / 2
    return (float(cx - half), float(cx + half)), (float(cy - half), float(cy + half))


def plot_chain_trajectories(
    paths: Mapping[tuple[str, int], torch.Tensor],
    *,
    max_paths: int = 100,
    n_modes: int = 8,
    title: str | None = None,
) -> Figure:
    """One panel per chain (rows) and round (columns): ``paths[(chain, k)]`` ``(T+1, n, 2)``, each
    trajectory in the colour of the source mode it starts from (:func:`source_modes`, the same
    labels in every panel when the panels start from the same points), its start ``Z_0`` in that
    colour and its end ``Z_1`` in black. Every panel shows the same window, zoomed to the
    trajectories (:func:`data_window`); one legend below names the modes and the markers."""
    if not paths:
        raise ValueError("plot_chain_trajectories needs at least one (chain, k) trajectory")
    kinds = list(dict.fromkeys(kind for kind, _ in paths))
    rounds = sorted({k for _, k in paths})
    arrays = {key: to_numpy(traj) for key, traj in paths.items()}
    xlim, ylim = data_window(np.concatenate([a.reshape(-1, 2) for a in arrays.values()]))
    fig, axes = plt.subplots(
        len(kinds),
        len(rounds),
        figsize=(2.7 * len(rounds) + 0.4, 2.7 * len(kinds) + 1.0),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    used: set[int] = set()
    for i, kind in enumerate(kinds):
        for j, k in enumerate(rounds):
            ax = axes[i][j]
            if (kind, k) not in arrays:
                ax.set_axis_off()
                continue
            traj = arrays[(kind, k)]
            modes = source_modes(traj[0], n_modes)
            used.update(int(m) for m in np.unique(modes))
            plot_trajectories(
                traj, ax=ax, max_paths=max_paths, modes=modes, show_ends=True, legend=None
            )
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            if i == 0:
                ax.set_title(f"round k = {k}")
            if j == 0:
                ax.set_ylabel(f"{kind} chain")
    handles = [
        Line2D([], [], color=MODE_COLORS[m % len(MODE_COLORS)], lw=2, label=f"from mode {m + 1}")
        for m in sorted(used)
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color="#777777", label="$Z_0$ (its mode's colour)"),
        Line2D([], [], ls="", marker="o", color="black", label="$Z_1$"),
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 5, 2 * len(rounds)),
        frameon=False,
        title="trajectories coloured by the source mode they start from",
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0.0, 1.0 / fig.get_figheight(), 1.0, 1.0))  # the legend: 1 inch
    return fig


def _save(
    fig: Figure,
    out_dir: Path,
    name: str,
    names: list[str],
    *,
    layout: bool = True,
    dpi: float | None = None,
) -> None:
    """Write ``fig`` as an 8-bit palette PNG (a few hundred colours are all a plot has; the file is
    about a third of a full-colour one), atomically; ``dpi`` defaults to the style's."""
    if layout:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi if dpi is not None else "figure")
    plt.close(fig)
    buf.seek(0)
    with Image.open(buf) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    palette.save(out, format="png", optimize=True)
    atomic_write_bytes(out_dir / name, out.getvalue())
    names.append(name)


def _experiment_figures(
    exp: Mapping[str, Any], paths: Mapping[tuple[str, int], torch.Tensor], out_dir: Path
) -> list[str]:
    slug, names = _slug(exp), cast(list[str], [])
    floor = sum(exp["noise_floor"]) / len(exp["noise_floor"])
    if exp.get("chains"):
        panels = [
            ("w2_many_steps", "W2, many Euler steps (X1 side it makes)", floor),
            ("w2_adaptive", "W2, adaptive solver (dopri5)", floor),
            ("w2_one_step", "W2, one Euler step", floor),
            ("reverse_x0_w2", "W2 of its reverse-ODE X0 to the source", None),
            ("straightness", "straightness S", None),
        ]
        if "w2_adaptive" not in exp["chains"][0]["metrics"]:  # saved before it was measured
            panels = [p for p in panels if p[0] != "w2_adaptive"]
        cols = 2 if len(panels) <= 4 else 3
        fig, axes = plt.subplots(2, cols, figsize=(5.5 * cols, 7.5), squeeze=False)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        for ax, (field, label, ref) in zip(axes.flat, panels, strict=False):
            plot_intervals_by_k(
                chain_by_k(exp, field), ax=ax, ylabel=label, reference=ref, title=label
            )
        fig.suptitle(f"{exp['source']} -> {exp['target']}: chains (mean, 95% interval over seeds)")
        _save(fig, out_dir, f"{slug}-chains.png", names)
    ks = student_rounds(exp)
    if ks:
        k = ks[-1]
        budgets = student_budgets(exp)
        tables = [
            (b, paired_table(exp, k, budget=b), twin_table(exp, k, budget=b)) for b in budgets
        ]
        rows = max(max(len(p), len(t), 4) for _, p, t in tables)
        fig, axes = plt.subplots(
            len(tables), 2, figsize=(14, len(tables) * (0.42 * rows + 1.4)), squeeze=False
        )
        for row, (b, paired, twins) in enumerate(tables):
            plot_paired_differences(
                paired,
                ax=axes[row][0],
                title=f"minus k-RF distillation at equal NFE (k={k}, {b} steps)",
            )
            plot_paired_differences(
                twins, ax=axes[row][1], title=f"Bezier minus its linear twin (k={k}, {b} steps)"
            )
        _save(fig, out_dir, f"{slug}-paired-differences.png", names)
        fig, ax = plt.subplots(figsize=(10.5, 4.8))
        plot_few_step(
            few_step_series(exp, k),
            ax=ax,
            reference=floor,
            title=f"few-step students at equal NFE (k={k})",
        )
        _save(fig, out_dir, f"{slug}-few-step.png", names)
    if paths:
        fig = plot_chain_trajectories(
            paths, title=f"{exp['source']} -> {exp['target']}: the chains' trajectories"
        )
        _save(fig, out_dir, f"{slug}-chain-trajectories.png", names, layout=False, dpi=110)
    return names


def write_figures(
    results: Mapping[str, Any],
    paths: list[Mapping[tuple[str, int], torch.Tensor]],
    out_dir: str | Path,
) -> list[str]:
    """Write every experiment's figures into ``out_dir``; returns the file names."""
    out = Path(out_dir)
    names: list[str] = []
    with style_context():
        for exp, p in zip(experiments(results), paths, strict=True):
            names += _experiment_figures(exp, p, out)
    return names
