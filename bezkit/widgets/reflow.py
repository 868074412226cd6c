"""The reflow widget of lesson 02: a slider over the round ``k`` shows that round's trajectories,
their chords ``Z0 -> Z1`` and its numbers (:func:`trajectory_summary`)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.metrics.crossings import crossing_mask, trajectory_crossings
from bezkit.metrics.straightness import (
    normalised_straightness,
    straightness,
    trajectory_velocities,
    transport_cost,
)
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import WidgetBundle, polylines

__all__ = ["reflow_widget", "trajectory_summary"]


@torch.no_grad()
def trajectory_summary(
    model: nn.Module,
    x0: Tensor,
    *,
    steps: int = 50,
    method: str = "euler",
    m_crossings: int | None = 200,
) -> dict[str, Any]:
    """The numbers a reflow round is shown with, from one recorded solve started at ``x0``.

    Returns ``{"trajectory": (steps+1, n, 2), "times", "crossings": crossing pairs among the first
    m_crossings trajectories, "m", "straightness", "normalised_straightness", "transport_cost",
    "nfe"}`` (METHODS.md section 5; straightness on the solver grid).
    """
    model.eval()
    sol = solve_ode(model, x0, method=method, steps=steps, record=True)
    traj, times = sol.trajectory, sol.times
    v = trajectory_velocities(model, traj, times)
    m = traj.shape[1] if m_crossings is None else min(m_crossings, traj.shape[1])
    cross = trajectory_crossings(traj[:, :m])
    return {
        "trajectory": traj,
        "times": times,
        "crossings": cross.pairs,
        "m": m,
        "straightness": straightness(model, traj, times, velocities=v),
        "normalised_straightness": normalised_straightness(model, traj, times, velocities=v),
        "transport_cost": transport_cost(traj[0], traj[-1]),
        "nfe": sol.nfe,
    }


def _as_rounds(rounds: Mapping[int, Mapping[str, Any]] | Sequence[Any]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    if isinstance(rounds, Mapping):
        items = list(rounds.items())
    else:
        items = []
        for i, r in enumerate(rounds, start=1):
            r = r if isinstance(r, Mapping) else vars(r)
            items.append((int(r.get("k", i)), r))
    for k, r in items:
        if "trajectory" not in r:
            raise ValueError(f"round {k} has no 'trajectory' (shape (T+1, n, 2))")
        traj = to_numpy(r["trajectory"])
        if traj.ndim != 3 or traj.shape[2] != 2 or traj.shape[0] < 2:
            raise ValueError(f"round {k}: trajectory must have shape (T+1, n, 2), got {traj.shape}")
        out[int(k)] = {**r, "trajectory": traj}
    if not out:
        raise ValueError("reflow_widget needs at least one round")
    return dict(sorted(out.items()))


def reflow_widget(
    rounds: Mapping[int, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = ("crossings", "straightness"),
    max_paths: int = 100,
    seed: int = 0,
    lim: float | None = None,
) -> WidgetBundle:
    """A slider over the reflow round ``k``: that round's trajectories and numbers.

    ``rounds`` maps ``k`` to a dict with a ``"trajectory"`` ``(T+1, n, 2)`` and scalar metrics
    (e.g. :func:`trajectory_summary`'s output), or is a list of such dicts (``"k"`` keys, or 1, 2,
    ...). Every round should start from the same ``x0`` so that the same paths are compared. The
    figure shows ``max_paths`` trajectories (the same indices in every round), their chords
    ``Z0 -> Z1`` when ``chords`` is ticked (red where two chords cross), and one small panel per
    entry of ``metrics`` with the value of every round and the current one highlighted.

    Controls: ``k`` (an ``IntSlider``; a k without data snaps to the nearest round), ``chords``.
    Traces: ``trajectories``, ``Z0``, ``Z1``, ``chords``, ``crossing chords``, and per metric
    ``<metric>`` (all rounds) and ``<metric> at k``. ``state["k"]`` is the round drawn.
    """
    data = _as_rounds(rounds)
    ks = list(data)
    metrics = [m for m in metrics if all(m in r for r in data.values())]
    n = min(r["trajectory"].shape[1] for r in data.values())
    idx = subsample(n, max_paths, seed)

    cols = 1 + len(metrics)
    width = 480 + 210 * len(metrics)  # pixels: the trajectories, then one narrow panel per metric
    # the whole figure first, then one FigureWidget: its first state holds every trace
    fig = make_subplots(
        rows=1,
        cols=cols,
        column_widths=[480 / width] + [210 / width] * len(metrics),
        subplot_titles=["trajectories", *metrics],
        horizontal_spacing=0.08,
    )
    fig.add_scatter(
        name="trajectories",
        mode="lines",
        row=1,
        col=1,
        line=dict(color=COLORS["trajectory"], width=1),
        opacity=0.6,
    )
    fig.add_scatter(
        name="chords",
        mode="lines",
        row=1,
        col=1,
        visible=False,
        line=dict(color=COLORS["segment"], width=1, dash="dot"),
    )
    fig.add_scatter(
        name="crossing chords",
        mode="lines",
        row=1,
        col=1,
        visible=False,
        line=dict(color=COLORS["crossing"], width=1.5),
    )
    fig.add_scatter(
        name="Z0", mode="markers", row=1, col=1, marker=dict(size=4, color=COLORS["source"])
    )
    fig.add_scatter(
        name="Z1", mode="markers", row=1, col=1, marker=dict(size=4, color=COLORS["generated"])
    )
    for j, m in enumerate(metrics, start=2):
        ys = [float(data[k][m]) for k in ks]
        fig.add_scatter(
            name=m,
            x=ks,
            y=ys,
            mode="lines+markers",
            row=1,
            col=j,
            line=dict(color="#444"),
            marker=dict(size=6),
            showlegend=False,
        )
        fig.add_scatter(
            name=f"{m} at k",
            x=[ks[0]],
            y=[ys[0]],
            mode="markers",
            row=1,
            col=j,
            marker=dict(size=14, color=COLORS["crossing"]),
            showlegend=False,
        )
        fig.update_xaxes(title_text="k", dtick=1, row=1, col=j)
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim], row=1, col=1)
        fig.update_yaxes(range=[-lim, lim], row=1, col=1)
    fig.update_layout(
        width=width,
        height=460,
        margin=dict(l=30, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.1),
    )

    controls: dict[str, widgets.Widget] = {
        "k": widgets.IntSlider(
            value=ks[0],
            min=ks[0],
            max=ks[-1],
            step=1,
            description="round k",
            continuous_update=True,
        ),
        "chords": widgets.Checkbox(
            value=False, indent=False, description="show the chords Z0 -> Z1 (next round's pairs)"
        ),
    }
    readout = widgets.HTML()
    state: dict[str, Any] = {"rounds": data, "indices": idx}
    fig = go.FigureWidget(fig)
    traces = {tr.name: tr for tr in fig.data}

    def refresh() -> None:
        want = int(controls["k"].value)
        k = min(ks, key=lambda kk: (abs(kk - want), kk))
        r = data[k]
        paths = np.transpose(r["trajectory"][:, idx], (1, 0, 2))
        x, y = polylines(paths)
        z0, z1 = paths[:, 0], paths[:, -1]
        mask = crossing_mask(z0, z1) if len(z0) > 1 else np.zeros(len(z0), dtype=bool)
        cx, cy = polylines(np.stack([z0[mask], z1[mask]], axis=1))
        sx, sy = polylines(np.stack([z0[~mask], z1[~mask]], axis=1))
        show = bool(controls["chords"].value)
        with fig.batch_update():
            traces["trajectories"].x, traces["trajectories"].y = x, y
            traces["Z0"].x, traces["Z0"].y = z0[:, 0], z0[:, 1]
            traces["Z1"].x, traces["Z1"].y = z1[:, 0], z1[:, 1]
            traces["chords"].x, traces["chords"].y = sx, sy
            traces["crossing chords"].x, traces["crossing chords"].y = cx, cy
            traces["chords"].visible = show
            traces["crossing chords"].visible = show
            for m in metrics:
                traces[f"{m} at k"].x, traces[f"{m} at k"].y = [k], [float(r[m])]
        state.update(k=k, chord_crossings=int(mask.sum()))
        parts = [f"<b>round k = {k}</b>"]
        for name, val in r.items():
            if name in ("trajectory", "times", "k") or not isinstance(val, int | float):
                continue
            parts.append(
                f"{html.escape(str(name))} = {val:.4g}"
                if isinstance(val, float)
                else f"{html.escape(str(name))} = {val}"
            )
        parts.append(f"chords shown that cross another: {int(mask.sum())} of {len(mask)}")
        readout.value = " &nbsp;|&nbsp; ".join(parts)

    controls["k"].observe(lambda _c: refresh(), names="value")
    controls["chords"].observe(lambda _c: refresh(), names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([controls["k"], controls["chords"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
