"""Interactive figures for the notebooks: ipywidgets controls around a plotly ``FigureWidget``.

Every builder returns a :class:`WidgetBundle`. Display it (make it a cell's last expression, or
call ``display(bundle)``) to get the live widget in Jupyter; in a test, set a control's value and
read the figure's traces back, no kernel or browser needed::

    bundle = bezier_widget(order=2)
    bundle.controls["t"].value = 0.9
    bundle.trace("B(t)").x          # the point B(0.9), redrawn by the slider's callback

Builders:

- :func:`bezier_widget`: drag the control points of a quadratic or cubic curve with sliders and move
  ``t``: the curve, its control polygon, the tangent ``B'(t)``, the endpoint target
  ``(X1 - B(t)) / (1 - t)`` and, optionally, the degree-elevated polygon are redrawn.
- :func:`reflow_widget`: a slider over the reflow round ``k`` shows that round's trajectories, the
  straight chords ``Z0 -> Z1`` (the next round's pairs) and its crossing count and straightness.
  It takes precomputed per-round data (:func:`trajectory_summary`), so moving the slider is cheap.
- :func:`steps_widget`: a slider over the number of solver steps: samples, W2 to held-out data
  (with the noise floor) and the NFE. Each update integrates the ODE and solves an OT problem, so
  the slider only updates on release (``continuous_update=False``) and results are cached.

No control value inside a slider's range raises: ``t = 1``, guides at the slider limits, both ends
of ``k``, one solver step. Numerical failures (a model returning NaN) are shown in the readout.
Colours are those of :data:`bezkit.plot.COLORS`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

try:
    import ipywidgets as widgets
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "bezkit.widgets needs ipywidgets, plotly and anywidget: pip install 'bezkit[notebooks]'"
    ) from err

from bezkit.data.toy2d import Sampler
from bezkit.metrics.crossings import trajectory_crossings
from bezkit.metrics.straightness import (
    normalised_straightness,
    straightness,
    trajectory_velocities,
    transport_cost,
)
from bezkit.metrics.wasserstein import noise_floor as w2_noise_floor
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.plot import (
    COLORS,
    bezier_geometry,
    crossing_mask,
    degree_elevate,
    subsample,
    to_numpy,
)
from bezkit.solvers.fixed_step import FIXED_STEP
from bezkit.solvers.ode import solve_ode

__all__ = [
    "DEFAULT_CONTROL_POINTS",
    "WidgetBundle",
    "bezier_widget",
    "reflow_widget",
    "steps_widget",
    "trajectory_summary",
]

#: Default control points ``[X0, guides..., X1]`` of the Bezier widget, by order.
DEFAULT_CONTROL_POINTS: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((-2.0, -1.0), (2.0, 1.0)),
    2: ((-2.0, -1.0), (-1.0, 2.5), (2.0, 1.0)),
    3: ((-2.0, -1.0), (-1.5, 2.5), (1.0, -2.5), (2.0, 1.0)),
}


@dataclass
class WidgetBundle:
    """A displayable widget and handles on its parts.

    Attributes:
        box: the ipywidgets container to display.
        figure: the plotly ``FigureWidget`` inside it.
        controls: the sliders, toggles and dropdowns by name (set ``.value`` to drive the widget).
        readout: an HTML widget with the current numbers.
        state: the builder's current numbers and caches (documented by each builder).
        refresh: redraw from the controls' current values (the callbacks call it).
    """

    box: widgets.Box
    figure: go.FigureWidget
    controls: dict[str, widgets.Widget]
    readout: widgets.HTML
    state: dict[str, Any] = field(default_factory=dict)
    refresh: Callable[[], None] = lambda: None

    def trace(self, name: str) -> Any:
        """The figure's trace called ``name`` (a ``KeyError`` names the traces there are)."""
        for tr in self.figure.data:
            if tr.name == name:
                return tr
        raise KeyError(f"no trace {name!r}; traces: {[tr.name for tr in self.figure.data]}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)


def _fmt(v: Any, digits: int = 3) -> str:
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    parts = [f"{x:.{digits}f}" for x in a]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def _polylines(paths: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """``(m, L, 2)`` polylines as one x/y list with ``None`` between them (one plotly trace)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for p in paths:
        xs.extend(p[:, 0].tolist())
        xs.append(None)
        ys.extend(p[:, 1].tolist())
        ys.append(None)
    return xs, ys


def _arrow(name: str, color: str, **kwargs: Any) -> go.Scatter:
    """A two-point line trace with an arrow head at its second point."""
    return go.Scatter(
        x=[0.0, 0.0],
        y=[0.0, 0.0],
        mode="lines+markers",
        name=name,
        line=dict(color=color, width=3),
        marker=dict(symbol=["circle", "arrow"], size=[1, 14], angleref="previous", color=color),
        **kwargs,
    )


# -- Bezier curves ---------------------------------------------------------------------------------


def bezier_widget(
    order: int = 2,
    control_points: Sequence[Sequence[float]] | None = None,
    *,
    t: float = 0.5,
    limit: float = 4.0,
    step: float = 0.05,
    n_points: int = 101,
) -> WidgetBundle:
    """Sliders move the control points of a Bezier curve of ``order`` (2: quadratic, 3: cubic).

    Controls: ``P{i}_x``, ``P{i}_y`` for each control point ``P_0 = X0, .., P_n = X1`` (range
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
    rng = [-limit - pad, limit + pad]
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
            _arrow("tangent", COLORS["tangent"]),
            _arrow("endpoint target", COLORS["endpoint"]),
        ],
        layout=go.Layout(
            width=560,
            height=520,
            margin=dict(l=30, r=10, t=40, b=30),
            xaxis=dict(range=rng, zeroline=False),
            yaxis=dict(range=rng, zeroline=False, scaleanchor="x", scaleratio=1),
            legend=dict(orientation="h", y=-0.08),
            title=dict(text=f"Bezier curve of order {order}", x=0.5),
        ),
    )
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
        lines = [
            f"<b>t</b> = {geo.t:.2f} &nbsp; <b>B(t)</b> = {_fmt(p)}",
            f"<span style='color:{COLORS['tangent']}'><b>B'(t)</b> = {_fmt(geo.tangent)}</span>"
            f" &nbsp; <span style='color:{COLORS['endpoint']}'><b>(X1 - B(t)) / (1 - t)</b> = "
            f"{_fmt(geo.endpoint_velocity)}</span>",
            f"largest gap between the curve and the straight path (1-t) X0 + t X1: {gap:.2e}",
        ]
        readout.value = "<br>".join(lines)

    def on_change(_change: Any = None) -> None:
        if not state["busy"]:
            refresh()

    def on_chord(_change: Any = None) -> None:
        on = bool(controls["chord"].value)
        state["busy"] = True
        try:
            for key in guide_keys:
                controls[key].disabled = on
            if on:  # show where the guides went
                pts = current_points()
                for i in range(1, order):
                    controls[f"P{i}_x"].value = float(np.clip(pts[i, 0], -limit, limit))
                    controls[f"P{i}_y"].value = float(np.clip(pts[i, 1], -limit, limit))
        finally:
            state["busy"] = False
        refresh()

    def on_endpoint(_change: Any) -> None:
        if controls["chord"].value and not state["busy"]:
            on_chord()
        else:
            on_change()

    for key, ctrl in controls.items():
        if key == "chord":
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
                    fig,
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


# -- reflow rounds ---------------------------------------------------------------------------------


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
    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=cols,
            column_widths=[480 / width] + [210 / width] * len(metrics),
            subplot_titles=["trajectories", *metrics],
            horizontal_spacing=0.08,
        )
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
    traces = {tr.name: tr for tr in fig.data}

    def refresh() -> None:
        want = int(controls["k"].value)
        k = min(ks, key=lambda kk: (abs(kk - want), kk))
        r = data[k]
        paths = np.transpose(r["trajectory"][:, idx], (1, 0, 2))
        x, y = _polylines(paths)
        z0, z1 = paths[:, 0], paths[:, -1]
        mask = crossing_mask(z0, z1) if len(z0) > 1 else np.zeros(len(z0), dtype=bool)
        cx, cy = _polylines(np.stack([z0[mask], z1[mask]], axis=1))
        sx, sy = _polylines(np.stack([z0[~mask], z1[~mask]], axis=1))
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


# -- solver steps ----------------------------------------------------------------------------------


def steps_widget(
    model: nn.Module,
    source: Sampler | Tensor,
    *,
    target: Sampler | None = None,
    reference: Tensor | None = None,
    noise_floor: float | None = None,
    n: int = 1000,
    seed: int = 0,
    max_steps: int = 64,
    steps: int = 1,
    methods: Sequence[str] = ("euler", "midpoint", "heun", "rk4"),
    m_paths: int = 40,
    lim: float | None = None,
) -> WidgetBundle:
    """A slider over the number of solver steps: generated samples, W2 and NFE.

    ``source`` is a sampler (``n`` seeded points are drawn) or fixed starting points ``(n, 2)``.
    W2 is computed against ``reference`` (or ``n`` seeded samples of ``target``); the noise floor
    (W2 between two samples of the target of that size) is drawn beside it when known.

    Controls: ``steps`` (``IntSlider`` 1..``max_steps``, ``continuous_update=False``) and ``method``
    (a fixed-step solver; NFE = steps x evaluations per step). Traces: ``reference``, ``generated``,
    ``paths`` (the solver's polylines for ``m_paths`` samples), ``noise floor`` and one
    ``W2 <method>`` per solver with every (NFE, W2) computed so far. ``state["results"]`` caches
    ``{(method, steps): {"w2", "nfe", "seconds", ...}}``; ``state["current"]`` is the one drawn.
    The model is put in eval mode.
    """
    methods = [m for m in methods if m in FIXED_STEP]
    if not methods:
        raise ValueError(f"steps_widget needs fixed-step solvers among {list(FIXED_STEP)}")
    if isinstance(source, Tensor):
        x0 = source.float()
    else:
        x0 = source.sample(n, torch.Generator().manual_seed(seed))
    if reference is None and target is not None:
        reference = target.sample(x0.shape[0], torch.Generator().manual_seed(seed + 1))
    if noise_floor is None and target is not None:
        noise_floor = w2_noise_floor(target, x0.shape[0], seed=seed + 2)
    ref = None if reference is None else to_numpy(reference)
    path_idx = subsample(x0.shape[0], m_paths, seed)
    max_steps = max(1, int(max_steps))
    max_nfe = max_steps * max(FIXED_STEP[m][1] for m in methods)

    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.58, 0.42],
            subplot_titles=["samples", "W2 against NFE"],
            horizontal_spacing=0.1,
        )
    )
    fig.add_scatter(
        name="reference",
        mode="markers",
        row=1,
        col=1,
        x=[] if ref is None else ref[:, 0],
        y=[] if ref is None else ref[:, 1],
        marker=dict(size=3, color=COLORS["target"], opacity=0.35),
    )
    fig.add_scatter(
        name="generated",
        mode="markers",
        row=1,
        col=1,
        marker=dict(size=3, color=COLORS["generated"], opacity=0.7),
    )
    fig.add_scatter(
        name="paths",
        mode="lines+markers",
        row=1,
        col=1,
        line=dict(color=COLORS["trajectory"], width=1),
        marker=dict(size=3, color=COLORS["trajectory"]),
    )
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=2,
        x=[1, max_nfe] if noise_floor is not None else [],
        y=[noise_floor] * 2 if noise_floor is not None else [],
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    for i, m in enumerate(methods):
        fig.add_scatter(
            name=f"W2 {m}",
            mode="lines+markers",
            row=1,
            col=2,
            x=[],
            y=[],
            line=dict(color=f"hsl({(i * 85) % 360}, 60%, 40%)"),
        )
    fig.add_scatter(
        name="current",
        mode="markers",
        row=1,
        col=2,
        x=[],
        y=[],
        marker=dict(size=14, color=COLORS["crossing"], symbol="circle-open", line=dict(width=3)),
        showlegend=False,
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim], row=1, col=1)
        fig.update_yaxes(range=[-lim, lim], row=1, col=1)
    fig.update_xaxes(type="log", title_text="NFE", row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=900,
        height=440,
        margin=dict(l=30, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.12),
    )

    controls: dict[str, widgets.Widget] = {
        "steps": widgets.IntSlider(
            value=min(max(1, int(steps)), max_steps),
            min=1,
            max=max_steps,
            step=1,
            description="steps",
            continuous_update=False,
        ),
        "method": widgets.Dropdown(options=list(methods), value=methods[0], description="solver"),
    }
    readout = widgets.HTML()
    results: dict[tuple[str, int], dict[str, Any]] = {}
    state: dict[str, Any] = {
        "results": results,
        "x0": x0,
        "reference": reference,
        "noise_floor": noise_floor,
        "current": None,
    }
    traces = {tr.name: tr for tr in fig.data}
    model.eval()

    def compute(method: str, k: int) -> dict[str, Any]:
        import time

        t0 = time.perf_counter()
        sol = solve_ode(model, x0, method=method, steps=k, record=True)
        out: dict[str, Any] = {
            "nfe": sol.nfe,
            "x": sol.x,
            "trajectory": sol.trajectory,
            "w2": math.nan,
            "error": None,
        }
        if not torch.isfinite(sol.x).all():
            out["error"] = "the samples contain NaN or inf"
        elif reference is not None:
            out["w2"] = wasserstein2(sol.x, reference)
        out["seconds"] = time.perf_counter() - t0
        return out

    def refresh() -> None:
        method, k = controls["method"].value, int(controls["steps"].value)
        key = (method, k)
        if key not in results:
            try:
                results[key] = compute(method, k)
            except (ValueError, RuntimeError, FloatingPointError) as err:
                results[key] = {
                    "nfe": k * FIXED_STEP[method][1],
                    "x": None,
                    "trajectory": None,
                    "w2": math.nan,
                    "error": str(err),
                    "seconds": 0.0,
                }
        res = results[key]
        with fig.batch_update():
            if res["x"] is not None:
                x = to_numpy(res["x"])
                paths = np.transpose(to_numpy(res["trajectory"])[:, path_idx], (1, 0, 2))
                px, py = _polylines(paths)
                traces["generated"].x, traces["generated"].y = x[:, 0], x[:, 1]
                traces["paths"].x, traces["paths"].y = px, py
            for m in methods:
                pts = sorted(
                    (r["nfe"], r["w2"])
                    for (mm, _), r in results.items()
                    if mm == m and math.isfinite(r["w2"])
                )
                traces[f"W2 {m}"].x = [p[0] for p in pts]
                traces[f"W2 {m}"].y = [p[1] for p in pts]
            ok = math.isfinite(res["w2"])
            traces["current"].x = [res["nfe"]] if ok else []
            traces["current"].y = [res["w2"]] if ok else []
        state["current"] = {"method": method, "steps": k, "nfe": res["nfe"], "w2": res["w2"]}
        text = f"<b>{html.escape(method)}</b>, {k} step(s): <b>NFE = {res['nfe']}</b>"
        if reference is not None:
            text += f" &nbsp; W2 = {res['w2']:.3f}"
        if noise_floor is not None:
            text += f" (noise floor {noise_floor:.3f})"
        if res["error"]:
            text += (
                f" &nbsp; <span style='color:{COLORS['crossing']}'>"
                f"{html.escape(res['error'])}</span>"
            )
        readout.value = text

    controls["steps"].observe(lambda _c: refresh(), names="value")
    controls["method"].observe(lambda _c: refresh(), names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([controls["steps"], controls["method"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )


# -- lessons 04 to 06: guides, students, error accumulation, B-DENSE --------------------------------
#
# Appended for the lessons (see bezkit.lessons); the builders above are unchanged.

__all__ += [
    "bdense_widget",
    "compare_steps_widget",
    "error_accumulation_widget",
    "guide_widget",
]


def _segments(a: np.ndarray, b: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Segments ``a[i] -> b[i]`` as one x/y list with ``None`` between them."""
    return _polylines(np.stack([a, b], axis=1))


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
    from bezkit.methods.bezier_distill import _teacher_state
    from bezkit.paths.bezier import BezierPath
    from bezkit.paths.guides import place_guides
    from bezkit.paths.targets import regression_target

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
    tx, ty = _polylines(np.transpose(traj, (1, 0, 2)))
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
            cache[key] = _teacher_state(teacher, a, si, how, teacher_steps).double()
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
        cx, cy = _polylines(curves)
        sx, sy = _segments(p, p + v)
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


def compare_steps_widget(
    models: Mapping[str, nn.Module],
    x0: Tensor,
    reference: Tensor,
    *,
    noise_floor: float | None = None,
    max_steps: int = 16,
    steps: int = 1,
    model: str | None = None,
    precompute: Sequence[int] = (1,),
    lim: float | None = None,
) -> WidgetBundle:
    """Several models, one sampler: pick a model and a number of Euler steps.

    The left panel shows the chosen model's samples from ``x0`` over the ``reference`` target
    samples; the right panel the W2 to ``reference`` against the steps of *every* model for every
    step count computed so far (``precompute`` step counts are computed for all models at once),
    with the ``noise_floor``. Controls: ``model`` (a dropdown over ``models``' names) and ``steps``
    (``IntSlider`` 1..``max_steps``, ``continuous_update=False``). Traces: ``reference``,
    ``generated``, ``noise floor``, ``W2 <name>`` per model, ``current``. ``state["results"]``
    caches ``{(name, steps): {"w2", "nfe", "x"}}``; ``state["current"]`` is the one drawn.
    """
    if not models:
        raise ValueError("compare_steps_widget needs at least one model")
    names = list(models)
    model = names[0] if model is None else model
    if model not in models:
        raise ValueError(f"unknown model {model!r}; have {names}")
    max_steps = max(1, int(max_steps))
    ref = to_numpy(reference)
    x0 = x0.float()
    for mod in models.values():
        mod.eval()
    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.55, 0.45],
            subplot_titles=["samples", "W2 against Euler steps"],
            horizontal_spacing=0.1,
        )
    )
    fig.add_scatter(
        name="reference",
        mode="markers",
        row=1,
        col=1,
        x=ref[:, 0],
        y=ref[:, 1],
        marker=dict(size=3, color=COLORS["target"], opacity=0.35),
    )
    fig.add_scatter(
        name="generated",
        mode="markers",
        row=1,
        col=1,
        marker=dict(size=3, color=COLORS["generated"], opacity=0.7),
    )
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=2,
        x=[1, max_steps] if noise_floor is not None else [],
        y=[noise_floor] * 2 if noise_floor is not None else [],
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    for i, name in enumerate(names):
        fig.add_scatter(
            name=f"W2 {name}",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=f"hsl({(i * 67) % 360}, 60%, 42%)"),
        )
    fig.add_scatter(
        name="current",
        mode="markers",
        row=1,
        col=2,
        marker=dict(size=14, color=COLORS["crossing"], symbol="circle-open", line=dict(width=3)),
        showlegend=False,
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim], row=1, col=1)
        fig.update_yaxes(range=[-lim, lim], row=1, col=1)
    fig.update_xaxes(type="log", title_text="Euler steps (NFE)", row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=940,
        height=460,
        margin=dict(l=30, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.14),
    )
    controls: dict[str, widgets.Widget] = {
        "model": widgets.Dropdown(options=names, value=model, description="model"),
        "steps": widgets.IntSlider(
            value=min(max(1, int(steps)), max_steps),
            min=1,
            max=max_steps,
            step=1,
            description="steps",
            continuous_update=False,
        ),
    }
    readout = widgets.HTML()
    results: dict[tuple[str, int], dict[str, Any]] = {}
    state: dict[str, Any] = {"results": results, "current": None, "noise_floor": noise_floor}
    traces = {tr.name: tr for tr in fig.data}

    def compute(name: str, k: int) -> dict[str, Any]:
        if (name, k) not in results:
            with torch.no_grad():
                sol = solve_ode(models[name], x0, method="euler", steps=k)
            ok = bool(torch.isfinite(sol.x).all())
            results[(name, k)] = {
                "x": sol.x,
                "nfe": sol.nfe,
                "w2": wasserstein2(sol.x, reference) if ok else math.nan,
                "error": None if ok else "the samples contain NaN or inf",
            }
        return results[(name, k)]

    for k in precompute:
        if 1 <= int(k) <= max_steps:
            for name in names:
                compute(name, int(k))

    def refresh() -> None:
        name, k = controls["model"].value, int(controls["steps"].value)
        res = compute(name, k)
        x = to_numpy(res["x"])
        with fig.batch_update():
            traces["generated"].x, traces["generated"].y = x[:, 0], x[:, 1]
            for nm in names:
                pts = sorted(
                    (kk, r["w2"])
                    for (mm, kk), r in results.items()
                    if mm == nm and math.isfinite(r["w2"])
                )
                traces[f"W2 {nm}"].x = [p[0] for p in pts]
                traces[f"W2 {nm}"].y = [p[1] for p in pts]
            ok = math.isfinite(res["w2"])
            traces["current"].x = [k] if ok else []
            traces["current"].y = [res["w2"]] if ok else []
        state["current"] = {"model": name, "steps": k, "nfe": res["nfe"], "w2": res["w2"]}
        text = f"<b>{html.escape(name)}</b>, {k} Euler step(s) (NFE {res['nfe']}): "
        text += f"W2 = {res['w2']:.3f}"
        if noise_floor is not None:
            text += f" (noise floor {noise_floor:.3f})"
        if res["error"]:
            text += f" <span style='color:{COLORS['crossing']}'>{html.escape(res['error'])}</span>"
        readout.value = text

    controls["model"].observe(lambda _c: refresh(), names="value")
    controls["steps"].observe(lambda _c: refresh(), names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([controls["model"], controls["steps"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )


def error_accumulation_widget(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    metric: str = "w2@1",
    methods: Sequence[str] | None = None,
    k: int | None = None,
) -> WidgetBundle:
    """Browse the 2D experiment's ``results.json``: nothing is computed, everything is read.

    Left panel: the chosen metric against the reflow round ``k``, one line per selected method,
    the OT baselines (trained once) as dotted horizontal lines and, for W2, the noise floor. Right
    panel: W2 against the number of Euler steps at round ``k`` for the same methods and baselines.

    Controls: ``pair`` (a dropdown over the experiments, ``"source -> target"``), ``metric``
    (``"w2@<steps>"`` for each evaluated step count, or a scalar of
    :data:`bezkit.lessons.RUN_METRICS`), ``methods`` (a ``SelectMultiple`` over the per-round
    methods), ``baselines`` (show the OT baselines) and ``k`` (the round of the right panel).
    Traces: ``<method>``, ``<baseline> (trained once)`` and ``noise floor`` on the left;
    ``<method> steps``, ``<baseline> steps`` and ``noise floor (steps)`` on the right.
    ``state`` holds the current ``experiment``, ``series`` (``{method: {k: value}}``) and
    ``table`` (round ``k``'s values).
    """
    from bezkit.lessons import (
        BASELINES,
        RUN_METRICS,
        experiment_label,
        experiments,
        methods_of,
        metric_value,
        step_counts,
    )

    exps = experiments(results)
    if not exps:
        raise ValueError("the results hold no experiment")
    labels = [experiment_label(e) for e in exps]
    per_round = list(dict.fromkeys(m for e in exps for m in methods_of(e, baselines=False)))
    bases = list(dict.fromkeys(m for e in exps for m in methods_of(e) if m in BASELINES))
    steps_all = sorted({s for e in exps for s in step_counts(e)})
    scalars = [
        name
        for name in RUN_METRICS
        if any(name in r["metrics"] or name in r for e in exps for r in e["runs"])
    ]
    metric_options = [(f"W2 at {s} step{'s' if s > 1 else ''}", f"w2@{s}") for s in steps_all]
    metric_options += [(name.replace("_", " "), name) for name in scalars]
    values = [v for _, v in metric_options]
    if metric not in values:
        raise ValueError(f"unknown metric {metric!r}; have {values}")
    ks_all = sorted({int(r["k"]) for e in exps for r in e["runs"] if r["method"] not in BASELINES})
    ks_all = ks_all or [1]
    chosen = per_round if methods is None else [m for m in methods if m in per_round]

    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.5, 0.5],
            subplot_titles=["metric against the reflow round k", "W2 against Euler steps at k"],
            horizontal_spacing=0.1,
        )
    )
    palette = {m: f"hsl({(i * 47) % 360}, 65%, 42%)" for i, m in enumerate(per_round)}
    base_color = {"otcfm": "#8c564b", "full-ot": "#e377c2"}
    for m in per_round:
        fig.add_scatter(
            name=m, mode="lines+markers", row=1, col=1, line=dict(color=palette[m]), legendgroup=m
        )
    for bname in bases:
        fig.add_scatter(
            name=f"{bname} (trained once)",
            mode="lines",
            row=1,
            col=1,
            line=dict(color=base_color.get(bname, "#333"), dash="dot", width=2),
            legendgroup=bname,
        )
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=1,
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    for m in per_round:
        fig.add_scatter(
            name=f"{m} steps",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=palette[m]),
            legendgroup=m,
            showlegend=False,
        )
    for bname in bases:
        fig.add_scatter(
            name=f"{bname} steps",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=base_color.get(bname, "#333"), dash="dot"),
            legendgroup=bname,
            showlegend=False,
        )
    fig.add_scatter(
        name="noise floor (steps)",
        mode="lines",
        row=1,
        col=2,
        line=dict(color=COLORS["floor"], dash="dash"),
        showlegend=False,
    )
    fig.update_xaxes(title_text="reflow round k", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="Euler steps (NFE)", type="log", row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=980,
        height=470,
        margin=dict(l=40, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.15),
    )
    controls: dict[str, widgets.Widget] = {
        "pair": widgets.Dropdown(options=labels, value=labels[0], description="pair"),
        "metric": widgets.Dropdown(options=metric_options, value=metric, description="metric"),
        "methods": widgets.SelectMultiple(
            options=per_round,
            value=tuple(chosen),
            description="methods",
            rows=min(8, max(2, len(per_round))),
        ),
        "baselines": widgets.Checkbox(
            value=True, indent=False, description="OT baselines (minibatch OT, full OT map)"
        ),
        "k": widgets.IntSlider(
            value=ks_all[-1] if k is None else min(max(int(k), ks_all[0]), ks_all[-1]),
            min=ks_all[0],
            max=ks_all[-1],
            step=1,
            description="round k",
        ),
    }
    readout = widgets.HTML()
    state: dict[str, Any] = {}
    traces = {tr.name: tr for tr in fig.data}

    def value_of(run: Mapping[str, Any], key: str) -> float:
        try:
            if key.startswith("w2@"):
                return metric_value(run, "w2", int(key[3:]))
            return metric_value(run, key)
        except KeyError:
            return math.nan

    def refresh() -> None:
        exp = exps[labels.index(controls["pair"].value)]
        key = controls["metric"].value
        shown = set(controls["methods"].value)
        with_bases = bool(controls["baselines"].value)
        kk = int(controls["k"].value)
        ks = sorted({int(r["k"]) for r in exp["runs"] if r["method"] not in BASELINES}) or [1]
        series: dict[str, dict[int, float]] = {}
        curves: dict[str, dict[int, float]] = {}
        base_vals: dict[str, float] = {}
        for r in exp["runs"]:
            if r["method"] in BASELINES:
                base_vals[r["method"]] = value_of(r, key)
                curves[r["method"]] = {int(s): float(v) for s, v in r["metrics"]["w2"].items()}
                continue
            series.setdefault(r["method"], {})[int(r["k"])] = value_of(r, key)
            if int(r["k"]) == kk:
                curves[r["method"]] = {int(s): float(v) for s, v in r["metrics"]["w2"].items()}
        floor = exp.get("noise_floor")
        steps_here = step_counts(exp)
        span = [ks[0] - 0.2, ks[-1] + 0.2]
        with fig.batch_update():
            for m in per_round:
                on = m in shown and m in series
                pts = sorted(series.get(m, {}).items()) if on else []
                traces[m].x, traces[m].y = [p[0] for p in pts], [p[1] for p in pts]
                c = sorted(curves.get(m, {}).items()) if m in shown else []
                traces[f"{m} steps"].x = [p[0] for p in c]
                traces[f"{m} steps"].y = [p[1] for p in c]
            for bname in bases:
                v = base_vals.get(bname, math.nan)
                on = with_bases and math.isfinite(v)
                traces[f"{bname} (trained once)"].x = span if on else []
                traces[f"{bname} (trained once)"].y = [v, v] if on else []
                c = sorted(curves.get(bname, {}).items()) if with_bases else []
                traces[f"{bname} steps"].x = [p[0] for p in c]
                traces[f"{bname} steps"].y = [p[1] for p in c]
            w2_metric = key.startswith("w2@") and floor is not None
            traces["noise floor"].x = span if w2_metric else []
            traces["noise floor"].y = [floor, floor] if w2_metric else []
            ends = [steps_here[0], steps_here[-1]] if steps_here and floor is not None else []
            traces["noise floor (steps)"].x = ends
            traces["noise floor (steps)"].y = [floor] * len(ends)
            label = {v: name for name, v in metric_options}[key]
            fig.layout.yaxis.title.text = label
        table = {m: series[m][kk] for m in per_round if m in shown and kk in series.get(m, {})}
        if with_bases:
            table.update({f"{b} (once)": v for b, v in base_vals.items()})
        state.update(experiment=exp, series=series, table=table, k=kk, metric=key)
        spread = exp.get("noise_floor_std")
        parts = [f"<b>{html.escape(controls['pair'].value)}</b>, round k = {kk}:"]
        parts += [f"{html.escape(m)} {v:.4g}" for m, v in table.items() if math.isfinite(v)]
        if floor is not None:
            parts.append(
                f"W2 noise floor {floor:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")
            )
        readout.value = " &nbsp;|&nbsp; ".join(parts)

    for ctrl in controls.values():
        ctrl.observe(lambda _c: refresh(), names="value")
    refresh()
    left = widgets.VBox(
        [controls["pair"], controls["metric"], controls["k"], controls["baselines"]]
    )
    box = widgets.VBox([widgets.HBox([left, controls["methods"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )


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
    from bezkit.plot import branch_errors

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

    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.58, 0.42],
            subplot_titles=["branch j against the teacher", "per-branch error"],
            horizontal_spacing=0.1,
        )
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
    traces = {tr.name: tr for tr in fig.data}

    def refresh() -> None:
        kk = int(controls["K"].value)
        j = min(max(1, int(controls["j"].value)), kk)
        d = data[kk]
        z = d["states"][j - 1][draw]
        p = d["preds"][draw, j - 1]
        tj = d["times"][j - 1]
        full = np.transpose(d["trajectory"], (1, 0, 2))
        px, py = _polylines(full)
        ex, ey = _segments(p, z)
        with fig.batch_update():
            traces["teacher paths"].x, traces["teacher paths"].y = px, py
            traces["teacher Z(t_j)"].x, traces["teacher Z(t_j)"].y = z[:, 0], z[:, 1]
            traces["branch j"].x, traces["branch j"].y = p[:, 0], p[:, 1]
            traces["error"].x, traces["error"].y = ex, ey
            traces["current branch"].x = [tj]
            traces["current branch"].y = [float(d["errors"][j - 1])]
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
