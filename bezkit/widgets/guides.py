"""The guide widget of lesson 04: where a quadratic Bezier distillation guide comes from, on a few
real pairs of a teacher."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.paths.bezier import BezierPath
from bezkit.paths.guides import place_guides
from bezkit.paths.targets import regression_target
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import WidgetBundle, polylines, segments

__all__ = ["guide_widget"]


@torch.no_grad()
def _teacher_state_at(teacher: nn.Module, x0: Tensor, s: float, how: str, steps: int) -> Tensor:
    """The teacher's state at time ``s`` from ``x0``, as Bezier distillation places its guides:
    ``how = "euler"``: one Euler step ``x0 + s v(x0, 0)``; ``how = "ode"``: the ODE solved to ``s``
    with ``round(steps * s)`` steps (at least one)."""
    if how == "euler":
        return x0 + s * teacher(x0, torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device))
    return solve_ode(teacher, x0, steps=max(1, round(steps * s)), t_end=s).x


def guide_widget(
    teacher: nn.Module,
    x0: Tensor,
    x1: Tensor,
    *,
    s: float = 0.5,
    placement: str = "control",
    guide_state: str = "euler",
    target: str = "endpoint",
    t: float = 0.5,
    teacher_steps: int = 100,
    max_pairs: int = 12,
    seed: int = 0,
    n_points: int = 41,
    lim: float | None = None,
) -> WidgetBundle:
    """Where a quadratic Bezier distillation guide comes from, for a few real pairs.

    For ``max_pairs`` pairs ``(x0, x1)`` (seeded subsample; e.g. data-anchored pairs of the
    teacher) the widget draws the teacher's trajectory from ``x0`` (``teacher_steps`` Euler
    steps), the teacher's state ``Z`` at the guide time ``s`` (one Euler step ``x0 + s v(x0, 0)``,
    or its ODE solution, as :func:`bezkit.methods.make_bezier_pairs` computes it), the guide placed
    by ``control`` (``G = Z``) or ``interpolate`` (the curve passes through ``Z`` at ``s``), the
    quadratic curves, and at time ``t`` the point ``B(t)`` with the student's regression target as
    one Euler step of the remaining time.

    Controls: ``s`` (0.05..0.95), ``placement``, ``guide_state`` (``euler`` / ``ode``), ``target``
    (``tangent`` / ``endpoint``), ``t``. Traces: ``teacher paths``, ``X0``, ``X1``, ``teacher
    state``, ``guides``, ``curves``, ``B(s)``, ``B(t)``, ``target``. ``state`` holds ``guides``,
    ``gap_at_s`` (mean ``|B(s) - Z|``: 0 for ``interpolate``), ``path_gap`` (mean over pairs of the
    largest distance between the curve and the teacher's path at the same time) and
    ``landing_error`` (mean ``|B(t) + (1 - t) target - X1|``: 0 for the endpoint target).
    """
    if x0.shape != x1.shape or x0.ndim != 2 or x0.shape[1] != 2:
        raise ValueError(f"x0 and x1 must both be (n, 2), got {tuple(x0.shape)}, {tuple(x1.shape)}")
    for name, val, ok in (
        ("placement", placement, ("control", "interpolate")),
        ("guide_state", guide_state, ("euler", "ode")),
        ("target", target, ("tangent", "endpoint")),
    ):
        if val not in ok:
            raise ValueError(f"{name} must be one of {ok}, got {val!r}")
    idx = torch.as_tensor(subsample(x0.shape[0], max_pairs, seed))
    a, b = x0[idx].float(), x1[idx].float()
    teacher.eval()
    with torch.no_grad():
        sol = solve_ode(teacher, a, steps=teacher_steps, record=True)
    traj = to_numpy(sol.trajectory)  # (T+1, m, 2)
    grid_t = to_numpy(sol.times)
    path = BezierPath(2)
    m = a.shape[0]
    a64, b64 = a.double(), b.double()

    fig = go.FigureWidget(
        data=[
            go.Scatter(
                name="teacher paths",
                mode="lines",
                line=dict(color=COLORS["trajectory"], width=1, dash="dot"),
            ),
            go.Scatter(name="curves", mode="lines", line=dict(color=COLORS["curve"], width=2)),
            go.Scatter(
                name="guides",
                mode="markers",
                marker=dict(size=8, symbol="square", color=COLORS["control"]),
            ),
            go.Scatter(
                name="teacher state",
                mode="markers",
                marker=dict(size=12, symbol="star", color="gold", line=dict(width=1, color="#000")),
            ),
            go.Scatter(
                name="B(s)",
                mode="markers",
                marker=dict(
                    size=9, symbol="circle-open", color=COLORS["curve"], line=dict(width=2)
                ),
            ),
            go.Scatter(
                name="X0",
                mode="markers",
                x=to_numpy(a)[:, 0],
                y=to_numpy(a)[:, 1],
                marker=dict(size=8, color=COLORS["source"]),
            ),
            go.Scatter(
                name="X1",
                mode="markers",
                x=to_numpy(b)[:, 0],
                y=to_numpy(b)[:, 1],
                marker=dict(size=8, color=COLORS["target"]),
            ),
            go.Scatter(name="B(t)", mode="markers", marker=dict(size=7, color="black")),
            go.Scatter(name="target", mode="lines", line=dict(width=2.5)),
        ],
        layout=go.Layout(
            width=620,
            height=540,
            margin=dict(l=30, r=10, t=40, b=30),
            yaxis=dict(scaleanchor="x", scaleratio=1),
            legend=dict(orientation="h", y=-0.08),
            title=dict(text="quadratic Bezier distillation: guides from a teacher", x=0.5),
        ),
    )
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim])
        fig.update_yaxes(range=[-lim, lim])
    tx, ty = polylines(np.transpose(traj, (1, 0, 2)))
    fig.data[0].x, fig.data[0].y = tx, ty

    def toggle(options: Sequence[str], value: str, description: str) -> widgets.ToggleButtons:
        return widgets.ToggleButtons(
            options=list(options),
            value=value,
            description=description,
            style=dict(button_width="90px"),
        )

    controls: dict[str, widgets.Widget] = {
        "s": widgets.FloatSlider(
            value=float(min(0.95, max(0.05, s))),
            min=0.05,
            max=0.95,
            step=0.05,
            description="guide time s",
            continuous_update=True,
            readout_format=".2f",
            style=dict(description_width="90px"),
        ),
        "placement": toggle(("control", "interpolate"), placement, "placement"),
        "guide_state": toggle(("euler", "ode"), guide_state, "teacher state"),
        "target": toggle(("tangent", "endpoint"), target, "target"),
        "t": widgets.FloatSlider(
            value=float(min(1.0, max(0.0, t))),
            min=0.0,
            max=1.0,
            step=0.01,
            description="time t",
            continuous_update=True,
            readout_format=".2f",
            style=dict(description_width="90px"),
        ),
    }
    readout = widgets.HTML()
    cache: dict[tuple[float, str], Tensor] = {}
    state: dict[str, Any] = {"trajectory": traj, "x0": a, "x1": b}
    curve_grid = np.linspace(0.0, 1.0, max(2, int(n_points)))
    traces = {tr.name: tr for tr in fig.data}

    def teacher_state(si: float, how: str) -> Tensor:
        key = (round(si, 6), how)
        if key not in cache:
            cache[key] = _teacher_state_at(teacher, a, si, how, teacher_steps).double()
        return cache[key]

    def curve_at(times: np.ndarray, guide: Tensor) -> np.ndarray:
        return np.stack(
            [
                to_numpy(
                    path.point(a64, b64, torch.full((m,), float(u), dtype=torch.float64), (guide,))
                )
                for u in times
            ],
            axis=1,
        )  # (m, len(times), 2)

    def refresh() -> None:
        si, how = float(controls["s"].value), controls["guide_state"].value
        where, kind = controls["placement"].value, controls["target"].value
        tt = float(controls["t"].value)
        z = teacher_state(si, how)
        (guide,) = place_guides([z], [si], a64, b64, where)
        curves = curve_at(curve_grid, guide)
        on_teacher_grid = curve_at(grid_t, guide)
        path_gap = float(
            np.linalg.norm(on_teacher_grid - np.transpose(traj, (1, 0, 2)), axis=-1).max(1).mean()
        )
        b_s = to_numpy(path.point(a64, b64, torch.full((m,), si, dtype=torch.float64), (guide,)))
        zn, gn = to_numpy(z), to_numpy(guide)
        gap_at_s = float(np.linalg.norm(b_s - zn, axis=-1).mean())
        sample = path.sample(a64, b64, torch.full((m,), tt, dtype=torch.float64), (guide,))
        p = to_numpy(sample.x_t)
        v = to_numpy(regression_target(sample, kind)) * (1.0 - tt)
        landing = float(np.linalg.norm(p + v - to_numpy(b64), axis=-1).mean())
        cx, cy = polylines(curves)
        sx, sy = segments(p, p + v)
        with fig.batch_update():
            traces["curves"].x, traces["curves"].y = cx, cy
            traces["guides"].x, traces["guides"].y = gn[:, 0], gn[:, 1]
            traces["teacher state"].x, traces["teacher state"].y = zn[:, 0], zn[:, 1]
            traces["B(s)"].x, traces["B(s)"].y = b_s[:, 0], b_s[:, 1]
            traces["B(t)"].x, traces["B(t)"].y = p[:, 0], p[:, 1]
            traces["target"].x, traces["target"].y = sx, sy
            traces["target"].line.color = COLORS[kind]
            traces["target"].name = "target"
        state.update(
            guides=guide,
            states=z,
            gap_at_s=gap_at_s,
            path_gap=path_gap,
            landing_error=landing,
            s=si,
            t=tt,
        )
        readout.value = "<br>".join(
            [
                f"<b>{html.escape(where)}</b> guide from the teacher's <b>{html.escape(how)}</b> "
                f"state at s = {si:.2f}; mean |B(s) - Z| = {gap_at_s:.3f}",
                f"mean largest gap between the curve and the teacher's path: {path_gap:.3f}",
                f"<span style='color:{COLORS[kind]}'><b>{html.escape(kind)}</b> target</span> at "
                f"t = {tt:.2f}: one Euler step of the remaining time lands {landing:.3f} from X1 "
                "on average",
            ]
        )

    for ctrl in controls.values():
        ctrl.observe(lambda _c: refresh(), names="value")
    refresh()
    panel = widgets.VBox(
        [controls[k] for k in ("s", "placement", "guide_state", "target", "t")] + [readout]
    )
    box = widgets.VBox([widgets.HBox([fig, panel])])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
