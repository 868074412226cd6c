"""What every widget is made of: a :class:`WidgetBundle` (figure + controls + readout) and the
small trace builders the widgets share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

__all__ = [
    "WidgetBundle",
    "arrow_trace",
    "format_value",
    "polylines",
    "segments",
    "update_traces",
]


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


def segments(a: np.ndarray, b: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """Segments ``a[i] -> b[i]`` as one x/y list with ``None`` between them."""
    return polylines(np.stack([a, b], axis=1))


def update_traces(figure: go.FigureWidget, changes: Mapping[str, Mapping[str, Any]]) -> None:
    """Set properties of the traces named in ``changes`` (``{name: {property: value}}``), one
    ``Plotly.update`` message per trace.

    Never a ``figure.batch_update()`` over several traces: plotly sends such a batch as one message
    whose restyle data holds, for every property set in the batch, one value per trace, and fills a
    trace that did not set it (or set it to the value it had, which plotly drops) with its
    ``Undefined`` placeholder, ``"_undefined_"`` on the wire. plotly's anywidget front end applies
    that as the trace's data, and the trace vanishes in the browser. ``trace.update`` batches one
    trace only, so every value it sends is a value. A ``KeyError`` names the traces there are.
    """
    by_name = {tr.name: tr for tr in figure.data}
    for name in changes:
        if name not in by_name:
            raise KeyError(f"no trace {name!r}; traces: {list(by_name)}")
    for name, props in changes.items():
        by_name[name].update(dict(props))
