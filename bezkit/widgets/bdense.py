"""The B-DENSE widget of lesson 06: a student's K branches against the teacher's states."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.metrics.branches import branch_errors
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import (
    WidgetBundle,
    WidgetView,
    controls_over_figure,
    panel_figure,
    paths_trace,
    points_trace,
    polylines,
    segments,
)

__all__ = ["bdense_widget"]


@runtime_checkable
class _Branched(Protocol):
    """What the widget uses of a B-DENSE student (:class:`bezkit.models.BranchedVelocity`, or an
    ensemble of them)."""

    num_branches: int
    times: tuple[float, ...]

    def branches(self, x: Tensor, t: Tensor) -> Tensor: ...

    def sample(self, x: Tensor, steps: int = 1) -> Tensor: ...


@torch.no_grad()
def _student_data(
    model: nn.Module,
    kk: int,
    teacher: nn.Module,
    x0: Tensor,
    draw: np.ndarray,
    teacher_steps: int,
    reference: Tensor | None,
) -> dict[str, Any]:
    """The teacher's states at the K branch times (its grid rounded up to a multiple of K), the
    student's branch predictions from ``x0``, the per-branch errors and the W2 of every hop count
    dividing K: what the widget draws for the student with ``kk`` branches."""
    if not isinstance(model, _Branched) or model.num_branches != kk:
        raise ValueError(
            f"students[{kk}] must be a BranchedVelocity with {kk} branches, got "
            f"{getattr(model, 'num_branches', type(model).__name__)}"
        )
    model.eval()
    steps = kk * math.ceil(teacher_steps / kk)
    traj = solve_ode(teacher, x0, steps=steps, record=True).trajectory
    assert traj is not None  # record=True
    states = torch.stack([traj[steps * j // kk] for j in range(1, kk + 1)])  # (K, n, 2)
    preds = model.branches(x0, torch.zeros(x0.shape[0]))  # (n, K, 2)
    w2: dict[int, float] = {}
    if reference is not None:
        for hops in (h for h in range(1, kk + 1) if kk % h == 0):
            w2[hops] = wasserstein2(model.sample(x0, hops), reference)
    return {
        "states": to_numpy(states),
        "preds": to_numpy(preds),
        "trajectory": to_numpy(traj[:, draw]),
        "errors": branch_errors(model, x0, states),
        "times": tuple(model.times),
        "w2": w2,
    }


def _bdense_figure(
    data: Mapping[int, Mapping[str, Any]], x0: np.ndarray, lim: float | None
) -> go.FigureWidget:
    """The branch panel (teacher paths, ``x0``, errors, states, branch outputs; filled by the
    first draw) and the per-branch error of every student against ``t_j``."""
    fig = panel_figure(
        ["branch j against the teacher", "per-branch error"],
        [0.58, 0.42],
        width=960,
        height=470,
        lim=lim,
    )
    left = dict(row=1, col=1)
    fig.add_trace(paths_trace("teacher paths"), **left)
    fig.add_trace(points_trace("x0", x0, color=COLORS["source"], size=5), **left)
    fig.add_scatter(
        name="error", mode="lines", line=dict(color=COLORS["crossing"], width=1.5), **left
    )
    fig.add_scatter(
        name="teacher Z(t_j)",
        mode="markers",
        marker=dict(size=9, symbol="circle-open", color=COLORS["target"], line=dict(width=2)),
        **left,
    )
    fig.add_scatter(
        name="branch j", mode="markers", marker=dict(size=6, color=COLORS["generated"]), **left
    )
    for i, (kk, d) in enumerate(data.items()):
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
    fig.update_xaxes(title_text="branch time t_j", range=[0, 1.05], row=1, col=2)
    fig.update_yaxes(title_text="E |branch_j - Z(t_j)|^2", type="log", row=1, col=2)
    return go.FigureWidget(fig)


class _BdenseView(WidgetView):
    """The B-DENSE widget's controls (``K``, ``j``) and drawing."""

    def __init__(
        self,
        data: dict[int, dict[str, Any]],
        x0: np.ndarray,
        draw: np.ndarray,
        k0: int,
        noise_floor: float | None,
        lim: float | None,
    ) -> None:
        super().__init__()
        self.data, self.draw, self.noise_floor = data, draw, noise_floor
        self.figure = _bdense_figure(data, x0[draw], lim)
        self.controls = {
            "K": widgets.SelectionSlider(
                options=list(data), value=k0, description="branches K", continuous_update=True
            ),
            "j": widgets.IntSlider(
                value=k0, min=1, max=k0, step=1, description="branch j", continuous_update=True
            ),
        }
        self.state.update(
            errors={kk: d["errors"] for kk, d in data.items()},
            w2={kk: d["w2"] for kk, d in data.items()},
            K=k0,
        )
        self.controls["K"].observe(self.on_k, names="value")
        self.controls["j"].observe(self.on_change, names="value")

    def refresh(self) -> None:
        kk = int(self.controls["K"].value)
        j = min(max(1, int(self.controls["j"].value)), kk)
        d = self.data[kk]
        z = d["states"][j - 1][self.draw]
        p = d["preds"][self.draw, j - 1]
        tj = d["times"][j - 1]
        px, py = polylines(np.transpose(d["trajectory"], (1, 0, 2)))
        ex, ey = segments(p, z)
        changes: dict[str, dict[str, Any]] = {
            "teacher paths": dict(x=px, y=py),
            "teacher Z(t_j)": dict(x=z[:, 0], y=z[:, 1]),
            "branch j": dict(x=p[:, 0], y=p[:, 1]),
            "error": dict(x=ex, y=ey),
            "current branch": dict(x=[tj], y=[float(d["errors"][j - 1])]),
        }
        for other in self.data:
            changes[f"error K={other}"] = dict(opacity=1.0 if other == kk else 0.35)
        self.update(changes)
        self.state.update(K=kk, j=j, t_j=tj)
        self.readout.value = self._text(kk, j, tj)

    def _text(self, kk: int, j: int, tj: float) -> str:
        d = self.data[kk]
        kind = "sparse: the endpoint only" if kk == 1 else f"dense: {kk} states per trajectory"
        parts = [
            f"<b>K = {kk}</b> ({kind}); <b>branch j = {j}</b>, t_j = {tj:.3f}: "
            f"mean squared error {float(d['errors'][j - 1]):.4f}"
        ]
        if d["w2"]:
            hops = ", ".join(f"{h} hop(s) {v:.3f}" for h, v in d["w2"].items())
            text = f"W2 of model.sample(x0, hops): {hops}"
            if self.noise_floor is not None:
                text += f" (noise floor {self.noise_floor:.3f})"
            parts.append(text)
        return "<br>".join(parts)

    def on_k(self, change: Any) -> None:
        """A new K keeps the branch time ``t_j`` as close as it can."""
        old, new = int(change["old"]), int(change["new"])
        t_old = self.data[old]["times"][min(int(self.controls["j"].value), old) - 1]
        times = self.data[new]["times"]
        j_new = min(range(1, new + 1), key=lambda jj: (abs(times[jj - 1] - t_old), jj))
        with self.quietly():
            self.controls["j"].max = new
            self.controls["j"].value = j_new
        self.refresh()


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
    x0 = x0.float()
    teacher.eval()
    draw = subsample(x0.shape[0], max_points, seed)
    data = {
        kk: _student_data(students[kk], kk, teacher, x0, draw, teacher_steps, reference)
        for kk in sorted(students)
    }
    ks = list(data)
    k0 = ks[-1] if K is None else min(ks, key=lambda v: (abs(v - K), v))
    view = _BdenseView(data, to_numpy(x0), draw, k0, noise_floor, lim)
    view.refresh()
    return controls_over_figure(view)
