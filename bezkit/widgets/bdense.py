"""The B-DENSE widget of lesson 06: a student's K branches against the teacher's states."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.metrics.branches import branch_errors
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import WidgetBundle, polylines, segments

__all__ = ["bdense_widget"]


def bdense_widget(
    students: Mapping[int, nn.Module],
    teacher: nn.Module,
    x0: Tensor,
    *,
    reference: Tensor | None = None,
    noise_floor: float | None = None,
    teacher_steps: int = 100,
    max_points: int = 25,
    seed: int = 0,
    K: int | None = None,
    lim: float | None = None,
) -> WidgetBundle:
    """A slider over the number of branches ``K`` of B-DENSE students and over their branch ``j``.

    ``students`` maps ``K`` to a :class:`bezkit.models.BranchedVelocity` with K branches (K = 1 is
    plain one-step distillation: sparse supervision, the endpoint only). For every student the
    teacher's states ``Z_{t_j}`` at the branch times are computed from ``x0`` (its grid rounded up
    to a multiple of K, as in training) together with the per-branch mean squared error
    ``E ||branch_j(x0, 0) - Z_{t_j}||^2`` (:func:`bezkit.plot.branch_errors`) and, when
    ``reference`` is given, the W2 of ``model.sample(x0, hops)`` for every ``hops`` dividing K.

    Controls: ``K`` (a ``SelectionSlider`` over the students' K) and ``j`` (``IntSlider`` 1..K; on
    a change of K it keeps the branch time ``t_j`` as close as it can). Traces: ``teacher paths``,
    ``x0``, ``teacher Z(t_j)``, ``branch j``, ``error``, one ``error K=<K>`` per student (against
    ``t_j``) and ``current branch``. ``state`` holds ``K``, ``j``, ``errors`` (``{K: (K,)}``) and
    ``w2`` (``{K: {hops: W2}}``).
    """
    if not students:
        raise ValueError("bdense_widget needs at least one student")
    data: dict[int, dict[str, Any]] = {}
    x0 = x0.float()
    teacher.eval()
    draw = subsample(x0.shape[0], max_points, seed)
    for kk in sorted(students):
        model = students[kk]
        if getattr(model, "num_branches", None) != kk:
            raise ValueError(
                f"students[{kk}] must be a BranchedVelocity with {kk} branches, got "
                f"{getattr(model, 'num_branches', type(model).__name__)}"
            )
        model.eval()
        steps = kk * math.ceil(teacher_steps / kk)
        with torch.no_grad():
            traj = solve_ode(teacher, x0, steps=steps, record=True).trajectory
            states = torch.stack([traj[steps * j // kk] for j in range(1, kk + 1)])  # (K, n, 2)
            preds = model.branches(x0, torch.zeros(x0.shape[0]))  # (n, K, 2)
        w2: dict[int, float] = {}
        if reference is not None:
            for hops in (h for h in range(1, kk + 1) if kk % h == 0):
                w2[hops] = wasserstein2(model.sample(x0, hops), reference)
        data[kk] = {
            "states": to_numpy(states),
            "preds": to_numpy(preds),
            "trajectory": to_numpy(traj[:, draw]),
            "errors": branch_errors(model, x0, states),
            "times": tuple(model.times),
            "w2": w2,
        }
    ks = list(data)
    k0 = ks[-1] if K is None else min(ks, key=lambda v: (abs(v - K), v))

    # the whole figure first, then one FigureWidget: its first state holds every trace
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.58, 0.42],
        subplot_titles=["branch j against the teacher", "per-branch error"],
        horizontal_spacing=0.1,
    )
    fig.add_scatter(
        name="teacher paths",
        mode="lines",
        row=1,
        col=1,
        line=dict(color=COLORS["trajectory"], width=1),
        opacity=0.6,
    )
    fig.add_scatter(
        name="x0",
        mode="markers",
        row=1,
        col=1,
        x=to_numpy(x0)[draw, 0],
        y=to_numpy(x0)[draw, 1],
        marker=dict(size=5, color=COLORS["source"]),
    )
    fig.add_scatter(
        name="error", mode="lines", row=1, col=1, line=dict(color=COLORS["crossing"], width=1.5)
    )
    fig.add_scatter(
        name="teacher Z(t_j)",
        mode="markers",
        row=1,
        col=1,
        marker=dict(size=9, symbol="circle-open", color=COLORS["target"], line=dict(width=2)),
    )
    fig.add_scatter(
        name="branch j",
        mode="markers",
        row=1,
        col=1,
        marker=dict(size=6, color=COLORS["generated"]),
    )
    for i, kk in enumerate(ks):
        d = data[kk]
        fig.add_scatter(
            name=f"error K={kk}",
            mode="lines+markers",
            row=1,
            col=2,
            x=list(d["times"]),
            y=d["errors"].tolist(),
            line=dict(color=f"hsl({(i * 70 + 200) % 360}, 60%, 45%)"),
        )
    fig.add_scatter(
        name="current branch",
        mode="markers",
        row=1,
        col=2,
        marker=dict(size=15, color=COLORS["crossing"], symbol="circle-open", line=dict(width=3)),
        showlegend=False,
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim], row=1, col=1)
        fig.update_yaxes(range=[-lim, lim], row=1, col=1)
    fig.update_xaxes(title_text="branch time t_j", range=[0, 1.05], row=1, col=2)
    fig.update_yaxes(title_text="E |branch_j - Z(t_j)|^2", type="log", row=1, col=2)
    fig.update_layout(
        width=960,
        height=470,
        margin=dict(l=40, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.14),
    )
    controls: dict[str, widgets.Widget] = {
        "K": widgets.SelectionSlider(
            options=ks, value=k0, description="branches K", continuous_update=True
        ),
        "j": widgets.IntSlider(
            value=k0, min=1, max=k0, step=1, description="branch j", continuous_update=True
        ),
    }
    readout = widgets.HTML()
    state: dict[str, Any] = {
        "errors": {kk: d["errors"] for kk, d in data.items()},
        "w2": {kk: d["w2"] for kk, d in data.items()},
        "K": k0,
        "busy": False,
    }
    fig = go.FigureWidget(fig)
    traces = {tr.name: tr for tr in fig.data}

    def refresh() -> None:
        kk = int(controls["K"].value)
        j = min(max(1, int(controls["j"].value)), kk)
        d = data[kk]
        z = d["states"][j - 1][draw]
        p = d["preds"][draw, j - 1]
        tj = d["times"][j - 1]
        full = np.transpose(d["trajectory"], (1, 0, 2))
        px, py = polylines(full)
        ex, ey = segments(p, z)
        # one update per trace, no batch_update: a batch over several traces sends a trace whose
        # value did not change as plotly's "_undefined_" placeholder, which plotly's anywidget
        # front end stores as data (the per-branch error curves vanished in the browser)
        traces["teacher paths"].update(x=px, y=py)
        traces["teacher Z(t_j)"].update(x=z[:, 0], y=z[:, 1])
        traces["branch j"].update(x=p[:, 0], y=p[:, 1])
        traces["error"].update(x=ex, y=ey)
        traces["current branch"].update(x=[tj], y=[float(d["errors"][j - 1])])
        for other in ks:
            traces[f"error K={other}"].opacity = 1.0 if other == kk else 0.35
        state.update(K=kk, j=j, t_j=tj)
        kind = "sparse: the endpoint only" if kk == 1 else f"dense: {kk} states per trajectory"
        parts = [
            f"<b>K = {kk}</b> ({kind}); <b>branch j = {j}</b>, t_j = {tj:.3f}: "
            f"mean squared error {float(d['errors'][j - 1]):.4f}"
        ]
        if d["w2"]:
            hops = ", ".join(f"{h} hop(s) {v:.3f}" for h, v in d["w2"].items())
            text = f"W2 of model.sample(x0, hops): {hops}"
            if noise_floor is not None:
                text += f" (noise floor {noise_floor:.3f})"
            parts.append(text)
        readout.value = "<br>".join(parts)

    def on_k(change: Any) -> None:
        old, new = int(change["old"]), int(change["new"])
        t_old = data[old]["times"][min(int(controls["j"].value), old) - 1]
        j_new = min(range(1, new + 1), key=lambda jj: (abs(data[new]["times"][jj - 1] - t_old), jj))
        state["busy"] = True
        try:
            controls["j"].max = new
            controls["j"].value = j_new
        finally:
            state["busy"] = False
        refresh()

    def on_j(_change: Any) -> None:
        if not state["busy"]:
            refresh()

    controls["K"].observe(on_k, names="value")
    controls["j"].observe(on_j, names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([controls["K"], controls["j"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
