"""B-DENSE: a student's K branch outputs against the teacher's states at the branch times."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from bezkit.arrays import subsample, to_numpy
from bezkit.metrics.branches import teacher_branch_states
from bezkit.plot.style import COLORS, finish_axes, new_axes, place_legend

__all__ = ["plot_branches"]


@torch.no_grad()
def plot_branches(
    model: Any,
    x0: Any,
    teacher_states: Any = None,
    *,
    ax: Axes | None = None,
    max_points: int | None = 20,
    seed: int = 0,
    s: float = 0.0,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """A B-DENSE student's K branch outputs from ``x0`` against the teacher's states.

    For ``max_points`` starting points (seeded): the teacher's polyline ``Z_0, Z_{t_1}, ..,
    Z_{t_K}`` (grey), its states at the branch times (hollow circles, one colour per branch), the
    student's ``branch_j(x0, s)`` (filled, same colour) and a red segment for each branch's error.
    ``model`` may be None (the teacher alone) and ``teacher_states`` None (the branches alone).
    """
    ax = new_axes(ax)
    x = to_numpy(x0)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x0 must be 2D points of shape (n, 2), got {x.shape}")
    idx = subsample(x.shape[0], max_points, seed)
    k = None if model is None else int(model.num_branches)
    states = None if teacher_states is None else teacher_branch_states(teacher_states, k)[:, idx]
    if states is not None and k is None:
        k = states.shape[0]
    if k is None:
        raise ValueError("give a model, teacher states, or both")
    times = getattr(model, "times", None) or tuple(j / k for j in range(1, k + 1))
    cmap = plt.get_cmap("viridis")  # its dark half: the light end is yellow, unreadable on white
    colors = [cmap(0.05 + 0.6 * j / max(1, k - 1)) for j in range(k)]
    start = x[idx]
    if states is not None:
        lines = np.concatenate([start[None], states], axis=0).transpose(1, 0, 2)
        ax.add_collection(
            LineCollection(
                list(lines), colors=COLORS["trajectory"], linewidths=0.8, alpha=0.5, label="teacher"
            )
        )
    preds = None
    if model is not None:
        xt = torch.as_tensor(start, dtype=torch.float32)
        preds = model.branches(xt, torch.full((xt.shape[0],), float(s))).double().numpy()
    for j in range(k):
        name = f"$t_{{{j + 1}}} = {times[j]:.2f}$"
        if states is not None:
            ax.scatter(
                states[j, :, 0],
                states[j, :, 1],
                s=28,
                facecolors="none",
                edgecolors=[colors[j]],
                linewidths=1.2,
                zorder=4,
            )
        if preds is not None:
            ax.scatter(
                preds[:, j, 0],
                preds[:, j, 1],
                s=14,
                color=colors[j],
                zorder=5,
                linewidths=0,
                label=f"branch {j + 1}, {name}",
            )
            if states is not None:
                segs = np.stack([preds[:, j], states[j]], axis=1)
                ax.add_collection(
                    LineCollection(list(segs), colors=COLORS["crossing"], linewidths=0.8, alpha=0.7)
                )
        elif states is not None:
            ax.scatter([], [], s=28, facecolors="none", edgecolors=[colors[j]], label=name)
    ax.scatter(
        start[:, 0],
        start[:, 1],
        s=14,
        color=COLORS["source"],
        zorder=6,
        linewidths=0,
        label="$x_0$",
    )
    if states is not None and preds is not None:
        ax.scatter(
            [], [], s=28, facecolors="none", edgecolors="black", label="teacher $Z_{t_j}$ (hollow)"
        )
    place_legend(ax, where="below")
    ax.autoscale_view()
    finish_axes(ax, title, lim)
    return ax
