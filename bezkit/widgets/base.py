"""What every widget is made of: a :class:`WidgetBundle` (figure + controls + readout), the
figure and layout builders the widgets share (:func:`panel_figure`, :func:`controls_over_figure`,
:func:`figure_beside_panel`), :class:`WidgetView` (the state and callbacks of one widget), the one
safe way to change traces (:func:`update_traces`) and small trace builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bezkit.plot.style import COLORS
from bezkit.widgets.canvas import Canvas

__all__ = [
    "WidgetBundle",
    "WidgetView",
    "arrow_trace",
    "controls_over_figure",
    "figure_beside_panel",
    "format_value",
    "noise_floor_trace",
    "panel_figure",
    "paths_trace",
    "points_trace",
    "polylines",
    "segments",
    "update_traces",
]


@dataclass
class WidgetBundle:
    """A displayable widget and handles on its parts.

    Attributes:
        box: the ipywidgets container to display.
        figure: the figure widget inside it (:class:`~bezkit.widgets.canvas.Canvas`).
        controls: the sliders, toggles and dropdowns by name (set ``.value`` to drive the widget).
        readout: an HTML widget with the current numbers.
        state: the builder's current numbers and caches (documented by each builder).
        refresh: redraw from the controls' current values (the callbacks call it).
    """

    box: widgets.Box
    figure: Canvas
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


def format_value(v: Any, digits: int = 3) -> str:
    """A number as ``0.123``, or a vector as ``(0.123, -4.560)``, with ``digits`` decimals."""
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    parts = [f"{x:.{digits}f}" for x in a]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def polylines(paths: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """``(m, L, 2)`` polylines as one x/y list with ``None`` between them (one plotly trace)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for p in paths:
        xs.extend(p[:, 0].tolist())
        xs.append(None)
        ys.extend(p[:, 1].tolist())
        ys.append(None)
    return xs, ys


def arrow_trace(name: str, color: str, **kwargs: Any) -> go.Scatter:
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


def paths_trace(name: str, **kwargs: Any) -> go.Scatter:
    """A bundle of trajectories as one thin line trace in the trajectory colour (fill its
    ``x``/``y`` with :func:`polylines`)."""
    return go.Scatter(
        name=name,
        mode="lines",
        line=dict(color=COLORS["trajectory"], width=1),
        opacity=0.6,
        **kwargs,
    )


def points_trace(name: str, points: np.ndarray, *, color: str, size: int) -> go.Scatter:
    """A cloud of ``(n, 2)`` points as one marker trace."""
    return go.Scatter(
        name=name,
        mode="markers",
        x=points[:, 0],
        y=points[:, 1],
        marker=dict(size=size, color=color),
    )


def noise_floor_trace(**kwargs: Any) -> go.Scatter:
    """The ``noise floor`` of a W2 panel, a dashed line: the W2 between two samples of the real
    data, the estimator's own error at that sample size."""
    return go.Scatter(
        name="noise floor", mode="lines", line=dict(color=COLORS["floor"], dash="dash"), **kwargs
    )


def segments(a: np.ndarray, b: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Segments ``a[i] -> b[i]`` as one x/y list with ``None`` between them."""
    return polylines(np.stack([a, b], axis=1))


def update_traces(figure: Canvas, changes: Mapping[str, Mapping[str, Any]]) -> None:
    """Set properties of the traces named in ``changes`` (``{name: {property: value}}``); the
    canvas sends the traces that changed in one message (:meth:`Canvas.batch_update`).

    Each trace is changed with its own ``trace.update`` (never plotly's multi-trace
    ``batch_update``, which fills a trace that did not set a property with ``"_undefined_"``);
    the canvas sends each changed trace's whole JSON. A ``KeyError`` names the traces there are.
    """
    by_name = {tr.name: tr for tr in figure.data}
    for name in changes:
        if name not in by_name:
            raise KeyError(f"no trace {name!r}; traces: {list(by_name)}")
    with figure.batch_update():  # the canvas's own batch: one message, each changed trace once
        for name, props in changes.items():
            by_name[name].update(dict(props))


def panel_figure(
    titles: Sequence[str],
    widths: Sequence[float],
    *,
    width: int,
    height: int,
    lim: float | None = None,
    spacing: float = 0.1,
    margin_left: int = 40,
    legend_y: float = -0.14,
    font_size: int | None = None,
    equal_axes: bool = True,
) -> go.Figure:
    """One row of panels (``widths``: fractions of the width) with a horizontal legend below.

    The first panel shows 2D points (unless ``equal_axes=False``): equal scales on both axes, and
    the square window ``[-lim, lim]^2`` when ``lim`` is given. Add the traces with
    ``row=1, col=c``, then make the ``Canvas`` of the whole figure, so that its first
    state holds every trace.
    """
    if len(titles) != len(widths):
        raise ValueError(f"{len(titles)} panel titles for {len(widths)} panel widths")
    fig = make_subplots(
        rows=1,
        cols=len(widths),
        column_widths=list(widths),
        subplot_titles=list(titles),
        horizontal_spacing=spacing,
    )
    if equal_axes:
        fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim], row=1, col=1)
        fig.update_yaxes(range=[-lim, lim], row=1, col=1)
    fig.update_layout(
        width=width,
        height=height,
        margin=dict(l=margin_left, r=10, t=40, b=30),
        legend=dict(orientation="h", y=legend_y),
    )
    if font_size is not None:
        fig.update_layout(font=dict(size=font_size))
    return fig


class WidgetView:
    """The state and callbacks of one widget: a subclass builds its ``figure``, ``controls`` and
    ``readout`` and draws them in :meth:`refresh`.

    :meth:`quietly` sets controls from the code (e.g. a slider that follows a drag) without each
    change redrawing: :meth:`on_change`, the observer of the controls, skips while it runs.
    """

    figure: Canvas
    controls: dict[str, widgets.Widget]
    readout: widgets.HTML
    state: dict[str, Any]

    def __init__(self) -> None:
        self.readout = widgets.HTML()
        self.state = {}
        self._busy = False

    def refresh(self) -> None:
        """Redraw the figure and the readout from the controls' current values."""
        raise NotImplementedError

    def on_change(self, _change: Any = None) -> None:
        """A control changed: redraw, unless the change came from inside :meth:`quietly`."""
        if not self._busy:
            self.refresh()

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Change controls from the code without a redraw per change."""
        busy, self._busy = self._busy, True
        try:
            yield
        finally:
            self._busy = busy

    @property
    def busy(self) -> bool:
        """Whether controls are being set from the code (:meth:`quietly`)."""
        return self._busy

    def update(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """:func:`update_traces` on this widget's figure."""
        update_traces(self.figure, changes)

    def bundle(self, box: widgets.Box) -> WidgetBundle:
        """The :class:`WidgetBundle` of this view, displayed as ``box``."""
        return WidgetBundle(
            box=box,
            figure=self.figure,
            controls=self.controls,
            readout=self.readout,
            state=self.state,
            refresh=self.refresh,
        )


def controls_over_figure(
    view: WidgetView, row: Sequence[widgets.Widget] | None = None
) -> WidgetBundle:
    """The layout of the panel widgets: the controls in a row (``row``, default every control),
    the readout below them and the figure below that."""
    controls = list(view.controls.values()) if row is None else list(row)
    return view.bundle(widgets.VBox([widgets.HBox(controls), view.readout, view.figure]))


def figure_beside_panel(
    view: WidgetView, figure: widgets.Widget, panel: Sequence[widgets.Widget]
) -> WidgetBundle:
    """The layout of the widgets with draggable points: the figure (with its drag layer,
    :func:`~bezkit.widgets.drag.stack_over`) on the left, ``panel`` and the readout on the right."""
    return view.bundle(widgets.VBox([widgets.HBox([figure, widgets.VBox([*panel, view.readout])])]))
