"""The guide widget of lesson 04: where a quadratic Bezier distillation guide comes from, on a few
real pairs of a teacher."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.couplings.reflow import ReflowCoupling
from bezkit.methods.bezier_distillation import GuideState, teacher_state
from bezkit.paths.bezier import BezierPath
from bezkit.paths.guides import GuidePlacement, place_guides
from bezkit.paths.targets import regression_target
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import (
    WidgetBundle,
    WidgetView,
    figure_beside_panel,
    format_value,
    points_trace,
    polylines,
    segments,
)
from bezkit.widgets.canvas import Canvas
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
def _probe_pair(teacher: nn.Module, p: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The probe's reflow pair ``(p, X1 = ODE_teacher(p))`` as :class:`ReflowCoupling` makes it,
    and the teacher's Euler path from ``p`` on the same grid, ``(steps + 1, 2)`` (to draw)."""
    pt = torch.tensor(p[None], dtype=torch.float32)
    x1 = ReflowCoupling(teacher, x0=pt, steps=steps).pairs.x1
    traj = solve_ode(teacher, pt, steps=steps, record=True).trajectory
    assert traj is not None  # record=True
    return to_numpy(x1[0]), to_numpy(traj[:, 0])


@torch.no_grad()
def _probe_curve(
    teacher: nn.Module,
    pair: tuple[np.ndarray, np.ndarray, np.ndarray],
    s: float,
    how: GuideState,
    where: GuidePlacement,
    teacher_steps: int,
    grid_t: np.ndarray,
    curve_grid: np.ndarray,
) -> dict[str, Any]:
    """The quadratic Bezier curve of one pair ``(p, x1)`` whose guide comes from the teacher's
    state at ``s``; ``path_p`` (the third of ``pair``) is the teacher's path from ``p`` on
    ``grid_t``."""
    p, x1, path_p = pair
    path = BezierPath(2)
    p64, x1p = torch.as_tensor(p[None]), torch.as_tensor(x1[None]).double()
    pt = torch.tensor(p[None], dtype=torch.float32)
    z = teacher_state(teacher, pt, s, how=how, steps=teacher_steps).double()
    (g,) = place_guides([z], [s], p64, x1p, where)

    def along(times: np.ndarray) -> np.ndarray:
        u = torch.as_tensor(times)
        n = u.shape[0]
        return to_numpy(path.point(p64.expand(n, 2), x1p.expand(n, 2), u, (g.expand(n, 2),)))

    return {
        "x0": p,
        "x1": x1,
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


def _guide_figure(plot_box: PlotBox, a: np.ndarray, b: np.ndarray, traj: np.ndarray) -> Canvas:
    """The pairs' traces (the teacher's paths, X0 and X1 drawn once; the rest filled by the first
    draw) and the probe's, on a figure pinned to ``plot_box``."""
    tx, ty = polylines(np.transpose(traj, (1, 0, 2)))
    return Canvas(
        go.Figure(
            data=[
                go.Scatter(
                    name="teacher paths",
                    x=tx,
                    y=ty,
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
                        size=12,
                        symbol="star",
                        color=COLORS["state"],
                        line=dict(width=1, color="#000"),
                    ),
                ),
                go.Scatter(
                    name="B(s)",
                    mode="markers",
                    marker=dict(
                        size=9, symbol="circle-open", color=COLORS["curve"], line=dict(width=2)
                    ),
                ),
                points_trace("X0", a, color=COLORS["source"], size=8),
                points_trace("X1", b, color=COLORS["target"], size=8),
                go.Scatter(name="B(t)", mode="markers", marker=dict(size=7, color="black")),
                go.Scatter(name="target", mode="lines", line=dict(width=2.5)),
                go.Scatter(
                    name="probe path",
                    mode="lines",
                    line=dict(color="black", width=1.5, dash="dot"),
                ),
                go.Scatter(
                    name="probe curve", mode="lines", line=dict(color=COLORS["curve"], width=4)
                ),
                go.Scatter(
                    name="probe guide",
                    mode="markers",
                    marker=dict(size=11, symbol="square", color="black"),
                ),
                go.Scatter(
                    name="probe X1",
                    mode="markers",
                    marker=dict(
                        size=12, symbol="diamond", color=COLORS["target"], line=dict(width=1)
                    ),
                ),
            ],
            layout=go.Layout(
                **pinned_layout(plot_box),
                legend=dict(orientation="h", y=-0.06, yanchor="top", x=0.0),
                title=dict(text="guides from a teacher: drag the probe X0", x=0.5),
            ),
        )
    )


def _guide_controls(
    s: float, placement: str, guide_state: str, target: str, t: float, p0: np.ndarray, lim: float
) -> dict[str, widgets.Widget]:
    """The guide time ``s``, the three toggles, the time ``t`` and the probe's two sliders."""

    def toggle(options: Sequence[str], value: str, description: str) -> widgets.ToggleButtons:
        return widgets.ToggleButtons(
            options=list(options),
            value=value,
            description=description,
            style=dict(button_width="90px"),
        )

    def slider(value: float, lo: float, hi: float, step: float, description: str, **kw: Any) -> Any:
        return widgets.FloatSlider(
            value=value,
            min=lo,
            max=hi,
            step=step,
            description=description,
            readout_format=".2f",
            style=dict(description_width="90px"),
            **kw,
        )

    return {
        "s": slider(float(min(0.95, max(0.05, s))), 0.05, 0.95, 0.05, "guide time s"),
        "placement": toggle(("control", "interpolate"), placement, "placement"),
        "guide_state": toggle(("euler", "ode"), guide_state, "teacher state"),
        "target": toggle(("tangent", "endpoint"), target, "target"),
        "t": slider(float(min(1.0, max(0.0, t))), 0.0, 1.0, 0.01, "time t"),
        **{
            f"probe_{axis}": slider(
                float(p0[j]), -lim, lim, 0.05, f"probe {axis}", continuous_update=False
            )
            for j, axis in enumerate("xy")
        },
    }


class _GuideView(WidgetView):
    """The guide widget: the pairs' curves from the current choices, and the dragged probe."""

    def __init__(
        self,
        teacher: nn.Module,
        a: Tensor,
        b: Tensor,
        choices: dict[str, Any],
        *,
        teacher_steps: int,
        n_points: int,
        lim: float | None,
        probe: Sequence[float] | None,
    ) -> None:
        super().__init__()
        self.teacher, self.teacher_steps = teacher, teacher_steps
        with torch.no_grad():
            sol = solve_ode(teacher, a, steps=teacher_steps, record=True)
        self.traj = to_numpy(sol.trajectory)  # (T+1, m, 2)
        self.grid_t = to_numpy(sol.times)
        self.a, self.a64, self.b64, self.m = a, a.double(), b.double(), a.shape[0]
        self.lim, p0 = _window_and_probe(a, b, self.traj, lim, probe)
        plot_box = PlotBox.square(-self.lim, self.lim, size=460, bottom=150)  # 5 legend rows
        self.figure = _guide_figure(plot_box, to_numpy(a), to_numpy(b), self.traj)
        self.controls = _guide_controls(**choices, p0=p0, lim=self.lim)
        self.drag = DragPoints(
            [p0.tolist()], plot_box, colors=[COLORS["source"]], labels=["probe X0"]
        )
        self.controls["points"] = self.drag
        self.state.update(
            trajectory=self.traj, x0=a, x1=b, teacher=teacher, teacher_steps=teacher_steps
        )
        self.curve_grid = np.linspace(0.0, 1.0, max(2, int(n_points)))
        self.states: dict[tuple[float, str], Tensor] = {}
        self.probe_pairs: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}
        self.drag.observe(self.on_drag, names="points")
        self._pairs_key: tuple[Any, ...] | None = None  # the choices the pairs were drawn for
        self._pair_numbers: dict[str, Any] = {}
        for key, ctrl in self.controls.items():
            if key != "points":
                ctrl.observe(self.on_change, names="value")

    def state_at(self, si: float, how: Any) -> Tensor:
        """The teacher's state at ``si`` from every pair's X0 (cached per choice)."""
        key = (round(si, 6), how)
        return _memo(
            self.states, key, lambda: _state(self.teacher, self.a, si, how, self.teacher_steps)
        )

    def curve_at(self, times: np.ndarray, guide: Tensor) -> np.ndarray:
        """Every pair's curve at ``times``, ``(m, len(times), 2)``."""
        path, m = BezierPath(2), self.m
        return np.stack(
            [
                to_numpy(
                    path.point(
                        self.a64,
                        self.b64,
                        torch.full((m,), float(u), dtype=torch.float64),
                        (guide,),
                    )
                )
                for u in times
            ],
            axis=1,
        )

    def probe_at(self, si: float, how: Any, where: Any) -> dict[str, Any]:
        c = self.controls
        p = np.array([c["probe_x"].value, c["probe_y"].value], dtype=np.float64)
        key = (round(float(p[0]), 9), round(float(p[1]), 9))
        x1, path_p = _memo(
            self.probe_pairs, key, lambda: _probe_pair(self.teacher, p, self.teacher_steps)
        )
        args = (si, how, where, self.teacher_steps, self.grid_t, self.curve_grid)
        return _probe_curve(self.teacher, (p, x1, path_p), *args)

    def on_drag(self, change: Any) -> None:
        """The probe was dragged (or ``points`` set from Python): move its sliders, redraw once."""
        if self.busy:
            return
        new = np.clip(
            np.asarray(change["new"], dtype=np.float64).reshape(1, 2), -self.lim, self.lim
        )
        with self.quietly():
            self.controls["probe_x"].value = float(new[0, 0])
            self.controls["probe_y"].value = float(new[0, 1])
        self.refresh()

    def refresh(self) -> None:
        c = self.controls
        si, how = float(c["s"].value), c["guide_state"].value
        where, kind = c["placement"].value, c["target"].value
        tt = float(c["t"].value)
        key = (si, how, where, kind, tt)
        if key != self._pairs_key:  # the probe (a drag) does not move the pairs: not redrawn
            self._pair_numbers = self._draw_pairs(si, how, where, kind, tt)
            self._pairs_key = key
        numbers = self._pair_numbers
        probe = self.probe_at(si, how, where)
        self._draw_probe(probe)
        with self.quietly():  # the handle follows the sliders (a no-op when it is there)
            self.drag.points = [probe["x0"].tolist()]
        self.state.update(probe=probe, s=si, t=tt, **numbers)
        self.readout.value = _guide_text(where, how, kind, si, tt, numbers, probe)

    def _draw_pairs(self, si: float, how: Any, where: Any, kind: Any, tt: float) -> dict[str, Any]:
        """Draw the pairs' guides, curves, ``B(s)``, ``B(t)`` and targets; their numbers."""
        path, m, a64, b64 = BezierPath(2), self.m, self.a64, self.b64
        z = self.state_at(si, how)
        (guide,) = place_guides([z], [si], a64, b64, where)
        curves = self.curve_at(self.curve_grid, guide)
        on_teacher_grid = self.curve_at(self.grid_t, guide)
        teacher_paths = np.transpose(self.traj, (1, 0, 2))
        path_gap = float(np.linalg.norm(on_teacher_grid - teacher_paths, axis=-1).max(1).mean())
        b_s = to_numpy(path.point(a64, b64, torch.full((m,), si, dtype=torch.float64), (guide,)))
        zn, gn = to_numpy(z), to_numpy(guide)
        sample = path.sample(a64, b64, torch.full((m,), tt, dtype=torch.float64), (guide,))
        p = to_numpy(sample.x_t)
        v = to_numpy(regression_target(sample, kind)) * (1.0 - tt)
        cx, cy = polylines(curves)
        sx, sy = segments(p, p + v)
        self.update(
            {
                "curves": dict(x=cx, y=cy),
                "guides": dict(x=gn[:, 0], y=gn[:, 1]),
                "teacher state": dict(x=zn[:, 0], y=zn[:, 1]),
                "B(s)": dict(x=b_s[:, 0], y=b_s[:, 1]),
                "B(t)": dict(x=p[:, 0], y=p[:, 1]),
                "target": dict(x=sx, y=sy, line=dict(color=COLORS[kind])),
            }
        )
        return dict(
            guides=guide,
            states=z,
            gap_at_s=float(np.linalg.norm(b_s - zn, axis=-1).mean()),
            path_gap=path_gap,
            landing_error=float(np.linalg.norm(p + v - to_numpy(b64), axis=-1).mean()),
        )

    def _draw_probe(self, probe: Mapping[str, Any]) -> None:
        pp, guide, x1 = probe["curve"], probe["guide"], probe["x1"]
        self.update(
            {
                "probe path": dict(x=probe["path"][:, 0], y=probe["path"][:, 1]),
                "probe curve": dict(x=pp[:, 0], y=pp[:, 1]),
                "probe guide": dict(x=[guide[0]], y=[guide[1]]),
                "probe X1": dict(x=[x1[0]], y=[x1[1]]),
            }
        )


def _guide_text(
    where: str,
    how: str,
    kind: str,
    si: float,
    tt: float,
    numbers: Mapping[str, Any],
    probe: Mapping[str, Any],
) -> str:
    return "<br>".join(
        [
            f"<b>{html.escape(where)}</b> guide from the teacher's <b>{html.escape(how)}</b> "
            f"state at s = {si:.2f}; mean |B(s) - Z| = {numbers['gap_at_s']:.3f}",
            f"mean largest gap between the curve and the teacher's path: {numbers['path_gap']:.3f}",
            f"<span style='color:{COLORS[kind]}'><b>{html.escape(kind)}</b> target</span> at "
            f"t = {tt:.2f}: one Euler step of the remaining time lands "
            f"{numbers['landing_error']:.3f} from X1 on average",
            f"probe X0 = {format_value(probe['x0'], 2)}: the teacher lands at X1 = "
            f"{format_value(probe['x1'], 2)}, guide G = "
            f"{format_value(probe['guide'], 2)}, largest gap between the curve and "
            f"the teacher's path {probe['path_gap']:.3f}",
        ]
    )


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
    choices = dict(s=s, placement=placement, guide_state=guide_state, target=target, t=t)
    view = _GuideView(
        teacher,
        a,
        b,
        choices,
        teacher_steps=teacher_steps,
        n_points=n_points,
        lim=lim,
        probe=probe,
    )
    view.refresh()
    names = ("s", "placement", "guide_state", "target", "t", "probe_x", "probe_y")
    return figure_beside_panel(
        view, stack_over(view.figure, view.drag), [view.controls[k] for k in names]
    )
