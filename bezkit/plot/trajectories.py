"""Samples, solver trajectories and the straight segments of a coupling, in 2D.

Every function draws into the ``ax`` it is given, or into a new figure when ``ax`` is None, and
returns the :class:`~matplotlib.axes.Axes` it drew on. Subsampling is seeded, so the same call
draws the same figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from bezkit.arrays import as_points2d, subsample, to_numpy
from bezkit.metrics.crossings import coupling_crossings, crossing_mask, segment_crossings
from bezkit.plot.style import COLORS, MODE_COLORS, finish_axes, new_axes, place_legend

__all__ = [
    "plot_coupling_segments",
    "plot_samples",
    "plot_trajectories",
    "source_modes",
]


def plot_samples(
    samples: Any,
    *,
    ax: Axes | None = None,
    label: str | None = None,
    color: str | None = None,
    s: float = 3.0,
    alpha: float = 0.5,
    max_points: int | None = 5000,
    seed: int = 0,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """Scatter 2D samples. ``samples`` is one ``(n, 2)`` set, or a mapping ``{label: (n, 2)}``
    (the keys ``source``, ``target`` and ``generated`` get their :data:`COLORS`)."""
    ax = new_axes(ax)
    sets: list[tuple[str | None, Any, str | None]]
    if isinstance(samples, Mapping):
        sets = [(str(k), v, COLORS.get(str(k))) for k, v in samples.items()]
    else:
        sets = [(label, samples, color)]
    for i, (name, pts, c) in enumerate(sets):
        arr = as_points2d(pts, f"samples {name!r}" if name else "samples")
        arr = arr[subsample(arr.shape[0], max_points, seed)]
        ax.scatter(
            arr[:, 0], arr[:, 1], s=s, alpha=alpha, color=c or f"C{i}", label=name, linewidths=0
        )
    if any(name for name, _, _ in sets):
        place_legend(ax, where="below", markerscale=3)
    finish_axes(ax, title, lim)
    return ax


def source_modes(x0: Any, n_modes: int = 8) -> np.ndarray:
    """Which of ``n_modes`` equal angular sectors around the centroid of ``x0`` each start point
    lies in (``(n,)`` ints in ``0..n_modes-1``), sector ``k`` centred on the angle
    ``2 pi k / n_modes``: for the 8-Gaussians source each Gaussian is one sector."""
    pts = as_points2d(x0, "x0")
    if n_modes < 1:
        raise ValueError(f"n_modes must be >= 1, got {n_modes}")
    d = pts - pts.mean(axis=0)
    angle = np.mod(np.arctan2(d[:, 1], d[:, 0]) + np.pi / n_modes, 2 * np.pi)
    return np.minimum((angle / (2 * np.pi / n_modes)).astype(int), n_modes - 1)


def plot_trajectories(
    trajectory: Any,
    *,
    ax: Axes | None = None,
    max_paths: int | None = 200,
    seed: int = 0,
    color: str | None = None,
    color_by: str | None = "mode",
    modes: Any = None,
    n_modes: int = 8,
    alpha: float = 0.5,
    linewidth: float = 0.9,
    show_ends: bool = True,
    title: str | None = None,
    lim: float | None = None,
    legend: str | None = "below",
) -> Axes:
    """Draw ``max_paths`` of the polylines in ``trajectory`` of shape ``(T+1, n, 2)`` (a solver's
    recorded states), with their start points ``Z_0`` and end points ``Z_1`` (black).

    Colours: ``color`` draws every path in one colour; otherwise ``color_by="mode"`` gives each
    path the colour of the source mode it starts from (``modes``: one integer label per path of
    the full ``trajectory``, default :func:`source_modes` with ``n_modes`` sectors), so paths that
    cross or swap modes stand out; ``color_by=None`` draws them grey. ``legend``: ``"below"``,
    ``"right"``, ``"inside"`` (:func:`~bezkit.plot.style.place_legend`) or None."""
    traj = to_numpy(trajectory)
    if traj.ndim != 3 or traj.shape[2] != 2 or traj.shape[0] < 2:
        raise ValueError(f"trajectory must have shape (T+1, n, 2) with T >= 1, got {traj.shape}")
    if color_by not in ("mode", None):
        raise ValueError(f"color_by must be 'mode' or None, got {color_by!r}")
    ax = new_axes(ax)
    idx = subsample(traj.shape[1], max_paths, seed)
    paths = np.transpose(traj[:, idx], (1, 0, 2))  # (m, T+1, 2)
    if color is None and color_by == "mode":
        labels = source_modes(traj[0], n_modes) if modes is None else np.asarray(modes, dtype=int)
        if labels.shape != (traj.shape[1],):
            raise ValueError(
                f"modes needs one label per path ({traj.shape[1]}), got {labels.shape}"
            )
        path_colors = [MODE_COLORS[k % len(MODE_COLORS)] for k in labels[idx]]
        start_colors = path_colors
        label = "trajectories (colour: source mode)"
    else:
        path_colors = [color or COLORS["trajectory"]] * len(idx)
        start_colors = [COLORS["source"]] * len(idx)
        label = "trajectories"
    lines = LineCollection(
        list(paths), colors=path_colors, alpha=alpha, linewidths=linewidth, label=label
    )
    ax.add_collection(lines)
    if show_ends:
        ax.scatter(
            paths[:, 0, 0],
            paths[:, 0, 1],
            s=9,
            c=start_colors,
            label="$Z_0$",
            zorder=3,
            linewidths=0,
        )
        ax.scatter(
            paths[:, -1, 0],
            paths[:, -1, 1],
            s=7,
            color="black",
            label="$Z_1$",
            zorder=3,
            linewidths=0,
        )
    ax.autoscale_view()
    finish_axes(ax, title, lim)
    if legend is not None:
        place_legend(ax, where=legend, markerscale=2)
    return ax


def plot_coupling_segments(
    x0: Any,
    x1: Any,
    *,
    ax: Axes | None = None,
    max_pairs: int | None = 100,
    seed: int = 0,
    highlight_crossings: bool = True,
    same_time: float | None = 0.1,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """Draw the straight segments ``X0_i -> X1_i`` of a coupling (``max_pairs`` of them, seeded).

    Segments that cross another drawn segment are red, the others grey. With ``same_time``, the
    crossing points that both linear paths reach at nearly the same time (``|t_i - t_j| <
    same_time``, see :func:`segment_crossings`) are marked with a black cross: there two training
    pairs ask for different velocities at the same ``(x, t)``. The title counts the crossing pairs
    (the count of :func:`bezkit.metrics.coupling_crossings` on the drawn segments).
    """
    a, b = as_points2d(x0, "x0"), as_points2d(x1, "x1")
    if a.shape != b.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {a.shape} and {b.shape}")
    ax = new_axes(ax)
    idx = subsample(a.shape[0], max_pairs, seed)
    a, b = a[idx], b[idx]
    segs = np.stack([a, b], axis=1)  # (m, 2, 2)
    mask = crossing_mask(a, b) if highlight_crossings else np.zeros(len(a), dtype=bool)
    for sel, color, alpha, name in (
        (~mask, COLORS["segment"], 0.8, "no crossing"),
        (mask, COLORS["crossing"], 0.6, "crosses another"),
    ):
        if sel.any():
            ax.add_collection(
                LineCollection(
                    list(segs[sel]), colors=color, linewidths=0.8, alpha=alpha, label=name
                )
            )
    ax.scatter(a[:, 0], a[:, 1], s=8, color=COLORS["source"], label="$X_0$", zorder=3, linewidths=0)
    ax.scatter(b[:, 0], b[:, 1], s=8, color=COLORS["target"], label="$X_1$", zorder=3, linewidths=0)
    n_same = None
    if highlight_crossings and same_time is not None:
        cr = segment_crossings(a, b)
        near = cr.point[cr.time_gap < same_time]
        n_same = len(near)
        if n_same:
            ax.scatter(
                near[:, 0],
                near[:, 1],
                marker="x",
                s=25,
                color="black",
                zorder=4,
                linewidths=1.2,
                label=f"same time ($|t_i - t_j| < {same_time:g}$)",
            )
    place_legend(ax, where="below")
    ax.autoscale_view()
    if title is None and highlight_crossings:
        pairs = coupling_crossings(torch.as_tensor(a), torch.as_tensor(b)).pairs
        title = f"{pairs} crossing pairs among {len(a)} segments"
        if n_same is not None:
            title += f"\n{n_same} at nearly the same time"
    finish_axes(ax, title, lim)
    return ax
