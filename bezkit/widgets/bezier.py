"""The Bezier curve widget of lesson 03: move the control points and ``t``, see the curve, its
tangent ``B'(t)`` and the endpoint target ``(X1 - B(t)) / (1 - t)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from bezkit.arrays import to_numpy
from bezkit.paths.bezier_geometry import bezier_geometry, degree_elevate
from bezkit.plot.style import COLORS
from bezkit.widgets.base import WidgetBundle, arrow_trace, format_value
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

    controls: dict[str, widgets.Widget] = {}
    rows = []
    for i in range(order + 1):
        role = "X0" if i == 0 else "X1" if i == order else f"G{i}"
        pair = []
        for j, axis in enumerate("xy"):
            s = widgets.FloatSlider(
                value=float(cp0[i, j]),
                min=-limit,
                max=limit,
                step=step,
                description=f"{role} {axis}",
                continuous_update=True,
                readout_format=".2f",
                layout=widgets.Layout(width="260px"),
            )
            controls[f"P{i}_{axis}"] = s
            pair.append(s)
        rows.append(widgets.HBox(pair))
    controls["t"] = widgets.FloatSlider(
        value=float(min(1.0, max(0.0, t))),
        min=0.0,
        max=1.0,
        step=0.01,
        description="t",
        continuous_update=True,
        readout_format=".2f",
        layout=widgets.Layout(width="520px"),
    )
    controls["chord"] = widgets.Checkbox(
        value=False,
        description="guides on the chord (the line, degree-elevated)",
        indent=False,
        layout=widgets.Layout(width="auto"),
    )
    controls["elevate"] = widgets.Checkbox(
        value=False,
        description=f"show the order-{order + 1} control polygon",
        indent=False,
        layout=widgets.Layout(width="auto"),
    )

    pad = 0.5
    plot_box = PlotBox.square(-limit - pad, limit + pad)
    end_colors = [COLORS["source"]] + [COLORS["control"]] * (order - 1) + [COLORS["target"]]
    fig = go.FigureWidget(
        data=[
            go.Scatter(
                name="control polygon",
                mode="lines+markers",
                line=dict(color=COLORS["control"], dash="dash", width=1),
                marker=dict(size=10, color=end_colors),
            ),
            go.Scatter(
                name="chord", mode="lines", line=dict(color=COLORS["chord"], dash="dot", width=2)
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
    roles = ["X0", *(f"G{i}" for i in range(1, order)), "X1"]
    drag = DragPoints(cp0, plot_box, colors=end_colors, labels=roles)
    controls["points"] = drag
    readout = widgets.HTML()
    state: dict[str, Any] = {"order": order, "busy": False}
    guide_keys = [f"P{i}_{a}" for i in range(1, order) for a in "xy"]

    def current_points() -> np.ndarray:
        pts = np.array(
            [[controls[f"P{i}_x"].value, controls[f"P{i}_y"].value] for i in range(order + 1)],
            dtype=np.float64,
        )
        if controls["chord"].value:  # exact chord points, whatever the sliders' rounding
            frac = np.arange(order + 1)[:, None] / order
            pts = (1 - frac) * pts[0] + frac * pts[-1]
        return pts

    def refresh() -> None:
        pts = current_points()
        geo = bezier_geometry(pts, controls["t"].value, n_points=n_points)
        grid = np.linspace(0.0, 1.0, geo.curve.shape[0])[:, None]
        line = (1 - grid) * pts[0] + grid * pts[-1]
        gap = float(np.abs(geo.curve - line).max())
        elevated = degree_elevate(pts)
        p, rem = geo.point, 1.0 - geo.t
        tan_end = p + rem * geo.tangent
        end_end = p + rem * geo.endpoint_velocity
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y = pts[:, 0], pts[:, 1]
            fig.data[1].x, fig.data[1].y = pts[[0, -1], 0], pts[[0, -1], 1]
            fig.data[2].x, fig.data[2].y = elevated[:, 0], elevated[:, 1]
            fig.data[2].visible = bool(controls["elevate"].value)
            fig.data[3].x, fig.data[3].y = geo.curve[:, 0], geo.curve[:, 1]
            fig.data[4].x, fig.data[4].y = [p[0]], [p[1]]
            fig.data[5].x, fig.data[5].y = [p[0], tan_end[0]], [p[1], tan_end[1]]
            fig.data[6].x, fig.data[6].y = [p[0], end_end[0]], [p[1], end_end[1]]
        state.update(geometry=geo, max_chord_gap=gap, elevated=elevated)
        drawn = pts.tolist()
        if drag.points != drawn or drag.locked != locked():
            state["busy"] = True
            try:
                drag.locked = locked()
                drag.points = drawn
            finally:
                state["busy"] = False
        lines = [
            f"<b>t</b> = {geo.t:.2f} &nbsp; <b>B(t)</b> = {format_value(p)}",
            f"<span style='color:{COLORS['tangent']}'><b>B'(t)</b> = {format_value(geo.tangent)}</span>"
            f" &nbsp; <span style='color:{COLORS['endpoint']}'><b>(X1 - B(t)) / (1 - t)</b> = "
            f"{format_value(geo.endpoint_velocity)}</span>",
            f"largest gap between the curve and the straight path (1-t) X0 + t X1: {gap:.2e}",
        ]
        readout.value = "<br>".join(lines)

    def on_change(_change: Any = None) -> None:
        if not state["busy"]:
            refresh()

    def show_guides_on_chord() -> None:
        pts = current_points()
        for i in range(1, order):
            controls[f"P{i}_x"].value = float(np.clip(pts[i, 0], -limit, limit))
            controls[f"P{i}_y"].value = float(np.clip(pts[i, 1], -limit, limit))

    def on_chord(_change: Any = None) -> None:
        on = bool(controls["chord"].value)
        state["busy"] = True
        try:
            for key in guide_keys:
                controls[key].disabled = on
            if on:  # show where the guides went
                show_guides_on_chord()
        finally:
            state["busy"] = False
        refresh()

    def locked() -> list[bool]:
        on = bool(controls["chord"].value)
        return [on and 0 < i < order for i in range(order + 1)]

    def on_drag(change: Any) -> None:
        """A handle was dragged (or ``points`` set from Python): move the sliders, redraw once."""
        if state["busy"]:
            return
        new = np.clip(np.asarray(change["new"], dtype=np.float64), -limit, limit)
        if new.shape != (order + 1, 2):
            raise ValueError(f"points must be {order + 1} (x, y) pairs, got shape {new.shape}")
        chord = bool(controls["chord"].value)
        state["busy"] = True
        try:
            for i in range(order + 1):
                if chord and 0 < i < order:
                    continue  # guides follow the chord, they are not dragged
                controls[f"P{i}_x"].value = float(new[i, 0])
                controls[f"P{i}_y"].value = float(new[i, 1])
            if chord:
                show_guides_on_chord()
        finally:
            state["busy"] = False
        refresh()

    def on_endpoint(_change: Any) -> None:
        if controls["chord"].value and not state["busy"]:
            on_chord()
        else:
            on_change()

    for key, ctrl in controls.items():
        if key == "points":
            ctrl.observe(on_drag, names="points")
        elif key == "chord":
            ctrl.observe(on_chord, names="value")
        elif key in ("P0_x", "P0_y", f"P{order}_x", f"P{order}_y"):
            ctrl.observe(on_endpoint, names="value")
        else:
            ctrl.observe(on_change, names="value")
    refresh()
    box = widgets.VBox(
        [
            widgets.HBox(
                [
                    stack_over(fig, drag),
                    widgets.VBox(
                        [*rows, controls["t"], controls["chord"], controls["elevate"], readout]
                    ),
                ]
            ),
        ]
    )
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
