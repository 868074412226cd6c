"""The Bezier curve widget of lesson 03: move the control points and ``t``, see the curve, its
tangent ``B'(t)`` and the endpoint target ``(X1 - B(t)) / (1 - t)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from bezkit.arrays import to_numpy
from bezkit.paths.geometry import bezier_geometry, degree_elevate
from bezkit.plot.style import COLORS
from bezkit.widgets.base import (
    WidgetBundle,
    WidgetView,
    arrow_trace,
    figure_beside_panel,
    format_value,
)
from bezkit.widgets.canvas import Canvas
from bezkit.widgets.drag import DragPoints, PlotBox, pinned_layout, stack_over

__all__ = ["DEFAULT_CONTROL_POINTS", "bezier_widget"]

#: Default control points ``[X0, guides..., X1]`` of the Bezier widget, by order.
DEFAULT_CONTROL_POINTS: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((-2.0, -1.0), (2.0, 1.0)),
    2: ((-2.0, -1.0), (-1.0, 2.5), (2.0, 1.0)),
    3: ((-2.0, -1.0), (-1.5, 2.5), (1.0, -2.5), (2.0, 1.0)),
}


def bezier_widget(
    order: int = 2,
    control_points: Sequence[Sequence[float]] | None = None,
    *,
    t: float = 0.5,
    limit: float = 4.0,
    step: float = 0.05,
    n_points: int = 101,
) -> WidgetBundle:
    """Drag the control points of a Bezier curve of ``order`` (2: quadratic, 3: cubic) with the
    mouse, or move them precisely with the sliders (both stay in sync).

    Controls: ``points``, the :class:`~bezkit.widgets.drag.DragPoints` layer over the figure
    (its ``points`` trait is what a mouse drag writes; setting it from Python moves the sliders and
    redraws), ``P{i}_x``, ``P{i}_y`` for each control point ``P_0 = X0, .., P_n = X1`` (range
    ``[-limit, limit]``); ``t`` in [0, 1]; ``chord`` puts the guides on the chord,
    ``P_i = X0 + (i / n)(X1 - X0)`` (the line, degree-elevated to order n: the curve *is* the
    straight path); ``elevate`` shows the order ``n + 1`` control polygon of the same curve.

    Traces: ``control polygon``, ``chord``, ``elevated polygon``, ``curve``, ``B(t)``, ``tangent``
    (``B(t) -> B(t) + (1 - t) B'(t)``) and ``endpoint target`` (``B(t) -> B(t) + (1 - t) (X1 -
    B(t)) / (1 - t)``, which ends on X1): both arrows are one Euler step of the remaining time.
    ``state["geometry"]`` is the current :class:`bezkit.plot.BezierGeometry`,
    ``state["max_chord_gap"]`` the largest distance between the curve and the straight path
    ``(1 - t) X0 + t X1`` at the same t.
    """
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"Bezier order must be an int >= 1, got {order!r}")
    if control_points is None:
        if order not in DEFAULT_CONTROL_POINTS:
            raise ValueError(f"give control_points for order {order}")
        control_points = DEFAULT_CONTROL_POINTS[order]
    cp0 = np.clip(to_numpy(control_points), -limit, limit)
    if cp0.shape != (order + 1, 2):
        raise ValueError(f"order {order} needs {order + 1} control points (x, y), got {cp0.shape}")
    view = _BezierView(cp0, t=t, limit=limit, step=step, n_points=n_points)
    view.refresh()
    return figure_beside_panel(view, stack_over(view.figure, view.drag), view.panel)


def _roles(order: int) -> list[str]:
    """``X0``, the guides ``G1 .. G{n-1}`` and ``X1``."""
    return ["X0", *(f"G{i}" for i in range(1, order)), "X1"]


def _point_sliders(
    cp0: np.ndarray, limit: float, step: float
) -> tuple[dict[str, widgets.FloatSlider], list[widgets.HBox]]:
    """An x and a y slider per control point (``P{i}_x``, ``P{i}_y``) and their rows."""
    sliders: dict[str, widgets.FloatSlider] = {}
    rows = []
    for i, role in enumerate(_roles(cp0.shape[0] - 1)):
        pair = []
        for j, axis in enumerate("xy"):
            sliders[f"P{i}_{axis}"] = slider = widgets.FloatSlider(
                value=float(cp0[i, j]),
                min=-limit,
                max=limit,
                step=step,
                description=f"{role} {axis}",
                continuous_update=True,
                readout_format=".2f",
                layout=widgets.Layout(width="260px"),
            )
            pair.append(slider)
        rows.append(widgets.HBox(pair))
    return sliders, rows


def _toggles(order: int, t: float) -> dict[str, widgets.Widget]:
    """The ``t`` slider and the ``chord`` and ``elevate`` check boxes."""
    return {
        "t": widgets.FloatSlider(
            value=float(min(1.0, max(0.0, t))),
            min=0.0,
            max=1.0,
            step=0.01,
            description="t",
            continuous_update=True,
            readout_format=".2f",
            layout=widgets.Layout(width="520px"),
        ),
        "chord": widgets.Checkbox(
            value=False,
            description="guides on the chord (the line, degree-elevated)",
            indent=False,
            layout=widgets.Layout(width="auto"),
        ),
        "elevate": widgets.Checkbox(
            value=False,
            description=f"show the order-{order + 1} control polygon",
            indent=False,
            layout=widgets.Layout(width="auto"),
        ),
    }


def _bezier_figure(order: int, plot_box: PlotBox, end_colors: list[str]) -> Canvas:
    """The curve's traces (filled by the first draw) on a figure pinned to ``plot_box``."""
    return Canvas(
        go.Figure(
            data=[
                go.Scatter(
                    name="control polygon",
                    mode="lines+markers",
                    line=dict(color=COLORS["control"], dash="dash", width=1),
                    marker=dict(size=10, color=end_colors),
                ),
                go.Scatter(
                    name="chord",
                    mode="lines",
                    line=dict(color=COLORS["chord"], dash="dot", width=2),
                ),
                go.Scatter(
                    name="elevated polygon",
                    mode="lines+markers",
                    visible=False,
                    line=dict(color=COLORS["curve"], dash="dot", width=1),
                    marker=dict(size=7, symbol="diamond-open", color=COLORS["curve"]),
                ),
                go.Scatter(name="curve", mode="lines", line=dict(color=COLORS["curve"], width=3)),
                go.Scatter(name="B(t)", mode="markers", marker=dict(size=11, color="black")),
                arrow_trace("tangent", COLORS["tangent"]),
                arrow_trace("endpoint target", COLORS["endpoint"]),
            ],
            layout=go.Layout(
                **pinned_layout(plot_box),
                legend=dict(orientation="h", y=-0.07, yanchor="top", x=0.0),
                title=dict(text=f"Bezier curve of order {order}: drag the points", x=0.5),
            ),
        )
    )


def _bezier_text(geo: Any, gap: float) -> str:
    p = geo.point
    return "<br>".join(
        [
            f"<b>t</b> = {geo.t:.2f} &nbsp; <b>B(t)</b> = {format_value(p)}",
            f"<span style='color:{COLORS['tangent']}'><b>B'(t)</b> = "
            f"{format_value(geo.tangent)}</span> &nbsp; "
            f"<span style='color:{COLORS['endpoint']}'><b>(X1 - B(t)) / (1 - t)</b> = "
            f"{format_value(geo.endpoint_velocity)}</span>",
            f"largest gap between the curve and the straight path (1-t) X0 + t X1: {gap:.2e}",
        ]
    )


class _BezierView(WidgetView):
    """The Bezier widget: sliders and draggable handles for the control points, ``t``, the chord
    and elevation toggles, kept in sync both ways."""

    def __init__(
        self, cp0: np.ndarray, *, t: float, limit: float, step: float, n_points: int
    ) -> None:
        super().__init__()
        self.order = order = cp0.shape[0] - 1
        self.limit, self.n_points = limit, n_points
        sliders, rows = _point_sliders(cp0, limit, step)
        toggles = _toggles(order, t)
        self.controls = {**sliders, **toggles}
        self.panel = [*rows, toggles["t"], toggles["chord"], toggles["elevate"]]
        pad = 0.5
        plot_box = PlotBox.square(-limit - pad, limit + pad)
        end_colors = [COLORS["source"]] + [COLORS["control"]] * (order - 1) + [COLORS["target"]]
        self.figure = _bezier_figure(order, plot_box, end_colors)
        self.drag = DragPoints(cp0.tolist(), plot_box, colors=end_colors, labels=_roles(order))
        self.controls["points"] = self.drag
        self.state["order"] = order
        self.guide_keys = [f"P{i}_{a}" for i in range(1, order) for a in "xy"]
        self._observe()

    def _observe(self) -> None:
        ends = ("P0_x", "P0_y", f"P{self.order}_x", f"P{self.order}_y")
        for key, ctrl in self.controls.items():
            if key == "points":
                ctrl.observe(self.on_drag, names="points")
            elif key == "chord":
                ctrl.observe(self.on_chord, names="value")
            elif key in ends:
                ctrl.observe(self.on_endpoint, names="value")
            else:
                ctrl.observe(self.on_change, names="value")

    def chord_is_on(self) -> bool:
        return bool(self.controls["chord"].value)

    def current_points(self) -> np.ndarray:
        c, order = self.controls, self.order
        pts = np.array(
            [[c[f"P{i}_x"].value, c[f"P{i}_y"].value] for i in range(order + 1)],
            dtype=np.float64,
        )
        if self.chord_is_on():  # exact chord points, whatever the sliders' rounding
            frac = np.arange(order + 1)[:, None] / order
            pts = (1 - frac) * pts[0] + frac * pts[-1]
        return pts

    def locked(self) -> list[bool]:
        on = self.chord_is_on()
        return [on and 0 < i < self.order for i in range(self.order + 1)]

    def refresh(self) -> None:
        pts = self.current_points()
        geo = bezier_geometry(pts, self.controls["t"].value, n_points=self.n_points)
        grid = np.linspace(0.0, 1.0, geo.curve.shape[0])[:, None]
        gap = float(np.abs(geo.curve - ((1 - grid) * pts[0] + grid * pts[-1])).max())
        p, rem = geo.point, 1.0 - geo.t
        tan_end = p + rem * geo.tangent
        end_end = p + rem * geo.endpoint_velocity
        self.update(
            {
                "control polygon": dict(x=pts[:, 0], y=pts[:, 1]),
                "chord": dict(x=pts[[0, -1], 0], y=pts[[0, -1], 1]),
                "curve": dict(x=geo.curve[:, 0], y=geo.curve[:, 1]),
                "B(t)": dict(x=[p[0]], y=[p[1]]),
                "tangent": dict(x=[p[0], tan_end[0]], y=[p[1], tan_end[1]]),
                "endpoint target": dict(x=[p[0], end_end[0]], y=[p[1], end_end[1]]),
                # hidden, it is neither computed nor sent: a drag cannot change what is not shown
                "elevated polygon": self._elevated(pts),
            }
        )
        self.state.update(geometry=geo, max_chord_gap=gap)
        drawn = pts.tolist()
        if self.drag.points != drawn or self.drag.locked != self.locked():
            with self.quietly():  # the handles follow the sliders
                self.drag.locked = self.locked()
                self.drag.points = drawn
        self.readout.value = _bezier_text(geo, gap)

    def _elevated(self, pts: np.ndarray) -> dict[str, Any]:
        """The order-(n+1) polygon's trace update: its points only while it is shown (also kept
        in ``state["elevated"]``)."""
        if not self.controls["elevate"].value:
            return dict(visible=False)
        elevated = degree_elevate(pts)
        self.state["elevated"] = elevated
        return dict(x=elevated[:, 0], y=elevated[:, 1], visible=True)

    def show_guides_on_chord(self) -> None:
        pts = self.current_points()
        for i in range(1, self.order):
            self.controls[f"P{i}_x"].value = float(np.clip(pts[i, 0], -self.limit, self.limit))
            self.controls[f"P{i}_y"].value = float(np.clip(pts[i, 1], -self.limit, self.limit))

    def on_chord(self, _change: Any = None) -> None:
        """The chord toggle: lock the guide sliders and show where the guides went."""
        on = self.chord_is_on()
        with self.quietly():
            for key in self.guide_keys:
                self.controls[key].disabled = on
            if on:
                self.show_guides_on_chord()
        self.refresh()

    def on_endpoint(self, _change: Any) -> None:
        """An endpoint slider: on the chord the guides move with it."""
        if self.chord_is_on() and not self.busy:
            self.on_chord()
        else:
            self.on_change()

    def on_drag(self, change: Any) -> None:
        """A handle was dragged (or ``points`` set from Python): move the sliders, redraw once."""
        if self.busy:
            return
        order = self.order
        new = np.clip(np.asarray(change["new"], dtype=np.float64), -self.limit, self.limit)
        if new.shape != (order + 1, 2):
            raise ValueError(f"points must be {order + 1} (x, y) pairs, got shape {new.shape}")
        chord = self.chord_is_on()
        with self.quietly():
            for i in range(order + 1):
                if chord and 0 < i < order:
                    continue  # guides follow the chord, they are not dragged
                self.controls[f"P{i}_x"].value = float(new[i, 0])
                self.controls[f"P{i}_y"].value = float(new[i, 1])
            if chord:
                self.show_guides_on_chord()
        self.refresh()
