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
        value=False, description="guides on the chord (the line, degree-elevated)", indent=False
    )
    controls["elevate"] = widgets.Checkbox(
        value=False, description=f"show the order-{order + 1} control polygon", indent=False
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
