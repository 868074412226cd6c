"""The reflow widget of lesson 02: a slider over the round ``k`` shows that round's trajectories,
their chords ``Z0 -> Z1`` and its numbers (:func:`trajectory_summary`)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.metrics.crossings import crossing_mask, trajectory_crossings
from bezkit.metrics.path_metrics import (
    normalised_straightness,
    straightness,
    trajectory_velocities,
    transport_cost,
)
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import (
    WidgetBundle,
    WidgetView,
    controls_over_figure,
    panel_figure,
    paths_trace,
    polylines,
)
from bezkit.widgets.canvas import Canvas

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
    assert traj is not None  # record=True
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


def _reflow_figure(
    data: Mapping[int, Mapping[str, Any]], metrics: Sequence[str], lim: float | None
) -> Canvas:
    """The trajectories panel (filled by the first draw) and one narrow panel per metric with
    the value of every round."""
    ks = list(data)
    width = 480 + 210 * len(metrics)  # pixels: the trajectories, then one narrow panel per metric
    fig = panel_figure(
        ["trajectories", *metrics],
        [480 / width] + [210 / width] * len(metrics),
        width=width,
        height=460,
        lim=lim,
        spacing=0.08,
        margin_left=30,
        legend_y=-0.1,
    )
    left = dict(row=1, col=1)
    fig.add_trace(paths_trace("trajectories"), **left)
    fig.add_scatter(
        name="chords",
        mode="lines",
        visible=False,
        line=dict(color=COLORS["segment"], width=1, dash="dot"),
        **left,
    )
    fig.add_scatter(
        name="crossing chords",
        mode="lines",
        visible=False,
        line=dict(color=COLORS["crossing"], width=1.5),
        **left,
    )
    fig.add_scatter(name="Z0", mode="markers", marker=dict(size=4, color=COLORS["source"]), **left)
    fig.add_scatter(
        name="Z1", mode="markers", marker=dict(size=4, color=COLORS["generated"]), **left
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
    return Canvas(fig)


def _round_text(k: int, r: Mapping[str, Any], crossing: int, shown: int) -> str:
    """The readout of round ``k``: its scalar numbers and the crossing chords."""
    parts = [f"<b>round k = {k}</b>"]
    for name, val in r.items():
        if name in ("trajectory", "times", "k") or not isinstance(val, int | float):
            continue
        parts.append(
            f"{html.escape(str(name))} = {val:.4g}"
            if isinstance(val, float)
            else f"{html.escape(str(name))} = {val}"
        )
    parts.append(f"chords shown that cross another: {crossing} of {shown}")
    return " &nbsp;|&nbsp; ".join(parts)


class _ReflowView(WidgetView):
    """The reflow widget's controls (``k``, ``chords``) and drawing."""

    def __init__(
        self,
        data: dict[int, dict[str, Any]],
        metrics: Sequence[str],
        indices: np.ndarray,
        lim: float | None,
    ) -> None:
        super().__init__()
        self.data, self.metrics, self.indices = data, list(metrics), indices
        ks = list(data)
        self.figure = _reflow_figure(data, self.metrics, lim)
        self.controls = {
            "k": widgets.IntSlider(
                value=ks[0],
                min=ks[0],
                max=ks[-1],
                step=1,
                description="round k",
                continuous_update=True,
            ),
            "chords": widgets.Checkbox(
                value=False,
                indent=False,
                description="show the chords Z0 -> Z1 (next round's pairs)",
                layout=widgets.Layout(width="auto"),  # the whole label, not cut at 300 px
            ),
        }
        self.state.update(rounds=data, indices=indices)
        for ctrl in self.controls.values():
            ctrl.observe(self.on_change, names="value")

    def refresh(self) -> None:
        want = int(self.controls["k"].value)
        k = min(self.data, key=lambda kk: (abs(kk - want), kk))  # a k without data snaps
        r = self.data[k]
        paths = np.transpose(r["trajectory"][:, self.indices], (1, 0, 2))
        z0, z1 = paths[:, 0], paths[:, -1]
        mask = crossing_mask(z0, z1) if len(z0) > 1 else np.zeros(len(z0), dtype=bool)
        cx, cy = polylines(np.stack([z0[mask], z1[mask]], axis=1))
        sx, sy = polylines(np.stack([z0[~mask], z1[~mask]], axis=1))
        x, y = polylines(paths)
        show = bool(self.controls["chords"].value)
        changes: dict[str, dict[str, Any]] = {
            "trajectories": dict(x=x, y=y),
            "Z0": dict(x=z0[:, 0], y=z0[:, 1]),
            "Z1": dict(x=z1[:, 0], y=z1[:, 1]),
            "chords": dict(x=sx, y=sy, visible=show),
            "crossing chords": dict(x=cx, y=cy, visible=show),
        }
        for m in self.metrics:
            changes[f"{m} at k"] = dict(x=[k], y=[float(r[m])])
        self.update(changes)
        self.state.update(k=k, chord_crossings=int(mask.sum()))
        self.readout.value = _round_text(k, r, int(mask.sum()), len(mask))


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
    metrics = [m for m in metrics if all(m in r for r in data.values())]
    n = min(r["trajectory"].shape[1] for r in data.values())
    view = _ReflowView(data, metrics, subsample(n, max_paths, seed), lim)
    view.refresh()
    return controls_over_figure(view)
