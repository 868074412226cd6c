"""The guide widget of lesson 04: where a quadratic Bezier distillation guide comes from, on a few
real pairs of a teacher."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.methods.bezier_distill import GuideState, teacher_state
from bezkit.paths.bezier import BezierPath
from bezkit.paths.guides import GuidePlacement, place_guides
from bezkit.paths.targets import regression_target
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import WidgetBundle, format_value, polylines, segments
from bezkit.widgets.drag import DragPoints, PlotBox, pinned_layout, stack_over

__all__ = ["guide_widget"]


def _check_inputs(x0: Tensor, x1: Tensor, **choices: str) -> None:
    """``x0``, ``x1`` are matching ``(n, 2)`` points and each choice is one the widget offers."""
    if x0.shape != x1.shape or x0.ndim != 2 or x0.shape[1] != 2:
        raise ValueError(f"x0 and x1 must both be (n, 2), got {tuple(x0.shape)}, {tuple(x1.shape)}")
    for name, val in choices.items():
        ok = _CHOICES[name]
        if val not in ok:
            raise ValueError(f"{name} must be one of {ok}, got {val!r}")


_CHOICES = {
    "placement": ("control", "interpolate"),
    "guide_state": ("euler", "ode"),
    "target": ("tangent", "endpoint"),
}


def _window_and_probe(
    a: Tensor, b: Tensor, traj: np.ndarray, lim: float | None, probe: Sequence[float] | None
) -> tuple[float, np.ndarray]:
    """The half-width of the square window (``lim``, or one that holds the teacher's paths and
    the targets) and the probe's first position inside it (default: the mean of ``a``)."""
    if lim is None:
        lim = math.ceil(max(float(np.abs(traj).max()), float(b.abs().max())) * 1.05 * 2) / 2
    p0 = to_numpy(a).mean(axis=0) if probe is None else np.asarray(probe, dtype=np.float64)
    if p0.shape != (2,):
        raise ValueError(f"probe must be one point (x, y), got shape {p0.shape}")
    return float(lim), np.clip(p0, -lim, lim)


@torch.no_grad()
def _probe_curve(
    teacher: nn.Module,
    p: np.ndarray,
    path_p: np.ndarray,
    s: float,
    how: GuideState,
    where: GuidePlacement,
    teacher_steps: int,
    grid_t: np.ndarray,
    curve_grid: np.ndarray,
) -> dict[str, Any]:
    """The quadratic Bezier curve of one pair ``(p, teacher's endpoint)`` whose guide comes from
    the teacher's state at ``s``; ``path_p`` is the teacher's path from ``p`` on ``grid_t``."""
    path = BezierPath(2)
    p64, x1p = torch.as_tensor(p[None]), torch.as_tensor(path_p[-1:])
    pt = torch.tensor(p[None], dtype=torch.float32)
    z = teacher_state(teacher, pt, s, how=how, steps=teacher_steps).double()
    (g,) = place_guides([z], [s], p64, x1p, where)

    def along(times: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(times)
        n = u.shape[0]
        return to_numpy(path.point(p64.expand(n, 2), x1p.expand(n, 2), u, (g.expand(n, 2),)))

    return {
        "x0": p,
        "x1": path_p[-1],
        "guide": to_numpy(g[0]),
        "path": path_p,
        "curve": along(curve_grid),
        "path_gap": float(np.linalg.norm(along(grid_t) - path_p, axis=-1).max()),
    }


def _memo(cache: dict, key: Any, make: Any) -> Any:
    """``cache[key]``, made by ``make()`` the first time."""
    if key not in cache:
        cache[key] = make()
    return cache[key]


@torch.no_grad()
def _state(teacher: nn.Module, x0: Tensor, s: float, how: GuideState, steps: int) -> Tensor:
    return teacher_state(teacher, x0, s, how=how, steps=steps).double()


@torch.no_grad()
def _teacher_path(teacher: nn.Module, p: np.ndarray, steps: int) -> np.ndarray:
    """The teacher's Euler path from the one point ``p``, ``(steps + 1, 2)``."""
    pt = torch.tensor(p[None], dtype=torch.float32)
    traj = solve_ode(teacher, pt, steps=steps, record=True).trajectory
    assert traj is not None  # record=True
    return to_numpy(traj[:, 0])


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
    probe: Sequence[float] | None = None,
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

    The **probe** is one more starting point that the mouse drags on the figure (``points``, the
    :class:`~bezkit.widgets.drag.DragPoints` layer; ``probe x`` / ``probe y`` are its sliders):
    the teacher's path from it, the teacher's endpoint ``X1``, the guide the current choices give
    and the quadratic curve are redrawn where it is dropped (traces ``probe path``, ``probe X1``,
    ``probe guide``, ``probe curve``; ``state["probe"]`` holds ``x0``, ``x1``, ``guide`` and
    ``path_gap``). ``probe`` is its first position (default: the mean of ``x0``).
    """
    _check_inputs(x0, x1, placement=placement, guide_state=guide_state, target=target)
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

    lim, p0 = _window_and_probe(a, b, traj, lim, probe)
    plot_box = PlotBox.square(-lim, lim, size=460, bottom=120)
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
                marker=dict(
                    size=12, symbol="star", color=COLORS["state"], line=dict(width=1, color="#000")
                ),
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
            go.Scatter(
                name="probe path",
                mode="lines",
                line=dict(color="black", width=1.5, dash="dot"),
            ),
            go.Scatter(name="probe curve", mode="lines", line=dict(color=COLORS["curve"], width=4)),
            go.Scatter(
                name="probe guide",
                mode="markers",
                marker=dict(size=11, symbol="square", color="black"),
            ),
            go.Scatter(
                name="probe X1",
                mode="markers",
                marker=dict(size=12, symbol="diamond", color=COLORS["target"], line=dict(width=1)),
            ),
        ],
        layout=go.Layout(
            **pinned_layout(plot_box),
            legend=dict(orientation="h", y=-0.06, yanchor="top", x=0.0),
            title=dict(text="guides from a teacher: drag the probe X0", x=0.5),
        ),
    )
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
    for j, axis in enumerate("xy"):
        controls[f"probe_{axis}"] = widgets.FloatSlider(
            value=float(p0[j]),
            min=-lim,
            max=lim,
            step=0.05,
            description=f"probe {axis}",
            continuous_update=False,
            readout_format=".2f",
            style=dict(description_width="90px"),
        )
    drag = DragPoints([p0.tolist()], plot_box, colors=[COLORS["source"]], labels=["probe X0"])
    controls["points"] = drag
    readout = widgets.HTML()
    cache: dict[tuple[float, str], Tensor] = {}
    state: dict[str, Any] = {
        "trajectory": traj,
        "x0": a,
        "x1": b,
        "teacher": teacher,
        "teacher_steps": teacher_steps,
    }
    curve_grid = np.linspace(0.0, 1.0, max(2, int(n_points)))
    traces = {tr.name: tr for tr in fig.data}

    def state_at(si: float, how: Any) -> Tensor:
        key = (round(si, 6), how)
        return _memo(cache, key, lambda: _state(teacher, a, si, how, teacher_steps))

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

    probe_paths: dict[tuple[float, float], np.ndarray] = {}

    def probe_at(si: float, how: Any, where: Any) -> dict[str, Any]:
        p = np.array([controls["probe_x"].value, controls["probe_y"].value], dtype=np.float64)
        key = (round(float(p[0]), 9), round(float(p[1]), 9))
        path_p = _memo(probe_paths, key, lambda: _teacher_path(teacher, p, teacher_steps))
        args = (si, how, where, teacher_steps, grid_t, curve_grid)
        return _probe_curve(teacher, p, path_p, *args)

    def on_drag(change: Any) -> None:
        """The probe was dragged (or ``points`` set from Python): move its sliders, redraw once."""
        if state.get("busy"):
            return
        new = np.clip(np.asarray(change["new"], dtype=np.float64).reshape(1, 2), -lim, lim)
        state["busy"] = True
        try:
            controls["probe_x"].value = float(new[0, 0])
            controls["probe_y"].value = float(new[0, 1])
        finally:
            state["busy"] = False
        refresh()

    def refresh() -> None:
        si, how = float(controls["s"].value), controls["guide_state"].value
        where, kind = controls["placement"].value, controls["target"].value
        tt = float(controls["t"].value)
        z = state_at(si, how)
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
        probe_state = probe_at(si, how, where)
        pp = probe_state["curve"]
        with fig.batch_update():
            traces["probe path"].x = probe_state["path"][:, 0]
            traces["probe path"].y = probe_state["path"][:, 1]
            traces["probe curve"].x, traces["probe curve"].y = pp[:, 0], pp[:, 1]
            traces["probe guide"].x = [probe_state["guide"][0]]
            traces["probe guide"].y = [probe_state["guide"][1]]
            traces["probe X1"].x = [probe_state["x1"][0]]
            traces["probe X1"].y = [probe_state["x1"][1]]
        state["busy"] = True  # the handle follows the sliders (a no-op when it is there)
        try:
            drag.points = [probe_state["x0"].tolist()]
        finally:
            state["busy"] = False
        state.update(
            probe=probe_state,
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
                f"probe X0 = {format_value(probe_state['x0'], 2)}: the teacher lands at X1 = "
                f"{format_value(probe_state['x1'], 2)}, guide G = "
                f"{format_value(probe_state['guide'], 2)}, largest gap between the curve and "
                f"the teacher's path {probe_state['path_gap']:.3f}",
            ]
        )

    def on_change(_change: Any) -> None:
        if not state.get("busy"):
            refresh()

    drag.observe(on_drag, names="points")
    for ctrl in (controls[k] for k in controls if k != "points"):
        ctrl.observe(on_change, names="value")
    refresh()
    names = ("s", "placement", "guide_state", "target", "t", "probe_x", "probe_y")
    panel = widgets.VBox([controls[k] for k in names] + [readout])
    box = widgets.VBox([widgets.HBox([stack_over(fig, drag), panel])])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
