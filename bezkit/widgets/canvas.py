"""bezkit's own figure widget: a plotly figure drawn as SVG by a small anywidget.

plotly's ``FigureWidget`` needs a 3.7 MB front-end module; on a slow machine the first figures of
a fresh page could render empty while it loaded. :class:`Canvas` keeps the plotly *Python* figure
(``go.Figure``: traces, layout, ``update``, the same API the widgets and tests use) and sends it to
a front end of about 20 kB (``canvas.js``) through synced traits:

- ``fig_layout``: the figure's layout JSON (``layout`` is ipywidgets' own CSS trait);
- ``n_traces`` and one trait per trace, ``t0``, ``t1``, ...: that trace's JSON.

The browser draws from the traits' current values, so whenever its module finishes loading the
first render shows the data (there is no message to miss). A change of one trace (``trace.update``,
``trace.x = ...``, :func:`~bezkit.widgets.base.update_traces`) re-sends that trace's trait only,
and nothing when the values did not change (plotly drops unchanged values before the hook
:meth:`_TrackedFigure._send_restyle_msg` sees them); the browser redraws that trace only, or the
whole figure when an axis range moved.

The front end draws the part of plotly the widgets use: scatter traces (lines, markers of the
symbols circle, square, diamond, star, cross, triangle-up, arrow and their ``-open`` forms, error
bars), linear and log axes (``range``, ``dtick``, ``rangemode="tozero"``, ``scaleanchor``),
subplot domains, annotations (subplot titles), the title and a horizontal legend. A data point
``(x, y)`` of a subplot whose axes span ``[x0, x1]`` and ``[y0, y1]`` over the pixels
``[px0, px1]`` and ``[py0, py1]`` is drawn at ``px0 + (x - x0) / (x1 - x0) * (px1 - px0)`` across
and ``py1 - (y - y0) / (y1 - y0) * (py1 - py0)`` down (``log10`` of the values on a log axis).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import plotly.graph_objects as go
import traitlets

__all__ = ["Canvas", "trace_json"]

#: Decimals kept on the wire (the Python figure keeps the exact numbers): far below a pixel.
WIRE_DECIMALS = 5
_ESM = (Path(__file__).with_name("canvas.js")).read_text(encoding="utf-8")


def _wire(value: Any) -> Any:
    """``value`` as JSON for the browser: arrays as lists, floats rounded, NaN and inf as None."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, WIRE_DECIMALS) if math.isfinite(value) else None
    return value


def trace_json(trace: Any) -> dict[str, Any]:
    """The JSON the browser draws one plotly trace from: :func:`_wire` of its properties (read
    without ``to_plotly_json``'s deep copy, which :func:`_wire` makes anyway)."""
    props = getattr(trace, "_props", None)
    return dict(_wire(props if isinstance(props, dict) else trace.to_plotly_json()))


class _TrackedFigure(go.Figure):
    """A ``go.Figure`` that tells its :class:`Canvas` which traces and whether the layout changed.

    plotly calls these ``_send_*`` hooks (no-ops on a plain ``go.Figure``, messages to the browser
    on a ``FigureWidget``) after every change, with only the values that really changed."""

    _canvas: Canvas | None = None

    def _changed(self, trace_indexes: Any, layout: bool) -> None:
        if self._canvas is not None:
            self._canvas._push(trace_indexes, layout)

    def _send_restyle_msg(
        self, style: Any, trace_indexes: Any = None, source_view_id: Any = None
    ) -> None:
        if style:
            self._changed(trace_indexes, False)

    def _send_relayout_msg(self, layout: Any, source_view_id: Any = None) -> None:
        if layout:
            self._changed([], True)

    def _send_update_msg(
        self,
        restyle_data: Any,
        relayout_data: Any,
        trace_indexes: Any = None,
        source_view_id: Any = None,
    ) -> None:
        self._changed(trace_indexes if restyle_data else [], bool(relayout_data))

    def _send_addTraces_msg(self, new_traces_data: Any) -> None:
        raise NotImplementedError("a bezkit Canvas has a fixed set of traces: add them first")

    def _send_deleteTraces_msg(self, delete_inds: Any) -> None:
        raise NotImplementedError("a bezkit Canvas has a fixed set of traces")

    def _send_moveTraces_msg(self, current_inds: Any, new_inds: Any) -> None:
        raise NotImplementedError("a bezkit Canvas has a fixed set of traces")


class Canvas(anywidget.AnyWidget):
    """A plotly figure (``figure``: any ``go.Figure`` or its dict) drawn in the browser by bezkit.

    Use it like a ``FigureWidget``: ``canvas.data`` (the traces: ``.name``, ``.x``, ``.update``),
    ``canvas.figure.layout``, :meth:`update_layout`, :meth:`batch_update`. ``sent`` counts the trace
    and layout updates sent since it was made (a test's measure of "only what changed").
    """

    _esm = _ESM
    fig_layout = traitlets.Dict().tag(sync=True)
    n_traces = traitlets.Int(0).tag(sync=True)

    def __init__(self, figure: Any = None, **kwargs: Any) -> None:
        fig = _TrackedFigure(figure if figure is not None else go.Figure())
        n = len(fig.data)
        # one synced trait per trace, declared before the widget opens its comm (anywidget adds
        # its own _esm trait the same way)
        self.add_traits(**{f"t{i}": traitlets.Dict().tag(sync=True) for i in range(n)})
        traces = {f"t{i}": trace_json(tr) for i, tr in enumerate(fig.data)}
        super().__init__(
            fig_layout=dict(_wire(fig.layout.to_plotly_json())), n_traces=n, **traces, **kwargs
        )
        # as wide as the output (the SVG caps itself at the figure's width and scales down below
        # it); ipywidgets' own rules would make it 300 px
        self.layout.width = "100%"
        self._figure = fig
        self.sent: dict[str, int] = {"traces": 0, "layout": 0}
        self._held: tuple[set[int], bool] | None = None
        fig._canvas = self

    # -- the figure's API -------------------------------------------------------------------------

    @property
    def figure(self) -> go.Figure:
        """The plotly figure drawn (change it, and the browser follows)."""
        return self._figure

    @property
    def data(self) -> tuple[Any, ...]:
        return tuple(self._figure.data)

    def update_layout(self, *args: Any, **kwargs: Any) -> Canvas:
        self._figure.update_layout(*args, **kwargs)
        return self

    def update_xaxes(self, *args: Any, **kwargs: Any) -> Canvas:
        self._figure.update_xaxes(*args, **kwargs)
        return self

    def update_yaxes(self, *args: Any, **kwargs: Any) -> Canvas:
        self._figure.update_yaxes(*args, **kwargs)
        return self

    @contextmanager
    def batch_update(self) -> Iterator[None]:
        """Changes inside are sent once, at the end (each changed trace once)."""
        outer = self._held
        if outer is None:
            self._held = (set(), False)
        try:
            yield
        finally:
            if outer is None:
                held, self._held = self._held, None
                assert held is not None
                self._send_changes(sorted(held[0]), held[1])

    # -- sending ----------------------------------------------------------------------------------

    def _push(self, trace_indexes: Any, layout: bool) -> None:
        if trace_indexes is None:
            idx = list(range(len(self._figure.data)))
        elif isinstance(trace_indexes, int):
            idx = [trace_indexes]
        else:
            idx = [int(i) for i in trace_indexes]
        if self._held is not None:
            self._held[0].update(idx)
            self._held = (self._held[0], self._held[1] or layout)
            return
        self._send_changes(idx, layout)

    def _send_changes(self, idx: list[int], layout: bool) -> None:
        with self.hold_sync():  # one message for the traces (and the layout) of one change
            for i in idx:
                setattr(self, f"t{i}", trace_json(self._figure.data[i]))
                self.sent["traces"] += 1
            if layout:
                self.fig_layout = dict(_wire(self._figure.layout.to_plotly_json()))
                self.sent["layout"] += 1
