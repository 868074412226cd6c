"""Draggable points over a plotly figure: the mouse moves a control point on the plot itself.

:class:`DragPoints` is a small `anywidget <https://anywidget.dev>`_ that draws one handle (an SVG
circle) per point on a transparent layer laid exactly over the plot area of a plotly
figure (:class:`~bezkit.widgets.canvas.Canvas`, :func:`stack_over`). Dragging a handle writes the new data coordinates to the
synced trait ``points``; a Python observer then redraws the figure and moves the sliders, which
stay as the precise fallback. Setting ``points`` from Python moves the handles, so both directions
are synced and a test can drive a drag without a browser::

    drag = bundle.controls["points"]
    drag.points = [[-2.0, -1.0], [0.0, 3.0], [2.0, 1.0]]   # what a mouse drag sends

The pixel of a data point is fixed by the figure's size, margins and axis ranges, which
:func:`pinned_layout` pins (equal scales, no zoom, no automatic margins), so the layer and the plot
agree. Where widgets do not run (a static notebook viewer) the figure shows without the handles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets

__all__ = ["DragPoints", "PlotBox", "pinned_layout", "stack_over"]

_ESM = r"""
const SVG = "http://www.w3.org/2000/svg";

function render({ model, el }) {
  el.classList.add("bezkit-drag-points");
  // laid over the figure: absolutely at the top left of the box that holds both
  el.style.position = "absolute";
  el.style.left = "0px";
  el.style.top = "0px";
  el.style.zIndex = "5";
  el.style.pointerEvents = "none";  // the plot below keeps its hover; only the handles catch
  let tries = 0;
  const hostWhenAttached = () => {
    if (el.parentElement) el.parentElement.style.position = "relative";
    else if (tries++ < 600) requestAnimationFrame(hostWhenAttached);
  };
  hostWhenAttached();
  const svg = document.createElementNS(SVG, "svg");
  svg.style.position = "absolute";
  svg.style.left = "0px";
  svg.style.top = "0px";
  svg.style.overflow = "visible";
  svg.style.pointerEvents = "none";
  el.appendChild(svg);
  let handles = [];
  let dragging = -1;
  // At most one drag message in flight: the next position goes when the kernel has answered
  // (its "ack", sent after the redraw) or after ACK_TIMEOUT_MS; positions in between are merged.
  let pending = null, inFlight = false, seq = model.get("seq") || 0, timer = 0, local = null;
  const ACK_TIMEOUT_MS = 1000;
  function flush() {
    if (inFlight || !pending) return;
    model.set("points", pending);
    model.set("seq", ++seq);
    model.save_changes();
    pending = null;
    inFlight = true;
    timer = setTimeout(() => { inFlight = false; flush(); }, ACK_TIMEOUT_MS);
  }
  const onMsg = (msg) => {
    if (msg && msg.ack === seq) { clearTimeout(timer); inFlight = false; flush(); }
  };

  const box = () => model.get("box");
  const toPixel = (x, y) => {
    const b = box();
    return [
      b.left + ((x - b.x0) / (b.x1 - b.x0)) * b.width,
      b.top + ((b.y1 - y) / (b.y1 - b.y0)) * b.height,
    ];
  };
  const toData = (px, py) => {
    const b = box();
    const x = b.x0 + ((px - b.left) / b.width) * (b.x1 - b.x0);
    const y = b.y1 - ((py - b.top) / b.height) * (b.y1 - b.y0);
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    return [clamp(x, b.x0, b.x1), clamp(y, b.y0, b.y1)];
  };

  function build() {
    const b = box();
    svg.setAttribute("width", b.total_width);
    svg.setAttribute("height", b.total_height);
    el.style.width = b.total_width + "px";
    el.style.height = b.total_height + "px";
    svg.replaceChildren();
    handles = model.get("points").map((_, i) => {
      const c = document.createElementNS(SVG, "circle");
      c.setAttribute("r", model.get("radius"));
      c.setAttribute("class", "bezkit-handle");
      c.dataset.index = String(i);
      c.style.pointerEvents = "all";
      c.style.cursor = "grab";
      c.style.fillOpacity = "0.35";
      c.style.strokeWidth = "2";
      const title = document.createElementNS(SVG, "title");
      c.appendChild(title);
      c.addEventListener("pointerdown", (ev) => {
        if (model.get("locked")[i]) return;
        dragging = i;
        c.setPointerCapture(ev.pointerId);
        c.style.cursor = "grabbing";
        ev.preventDefault();
        ev.stopPropagation();
      });
      c.addEventListener("pointermove", (ev) => {
        if (dragging !== i) return;
        const r = svg.getBoundingClientRect();
        const p = toData(ev.clientX - r.left, ev.clientY - r.top);
        local = [i, p];
        const [px, py] = toPixel(p[0], p[1]);  // the handle follows the mouse at once
        c.setAttribute("cx", px);
        c.setAttribute("cy", py);
        const pts = model.get("points").map((q) => q.slice());
        pts[i] = p;
        pending = pts;
        flush();
        ev.preventDefault();
      });
      const release = (ev) => {
        if (dragging !== i) return;
        dragging = -1;
        local = null;
        c.style.cursor = "grab";
        if (c.hasPointerCapture(ev.pointerId)) c.releasePointerCapture(ev.pointerId);
        flush();
      };
      c.addEventListener("pointerup", release);
      c.addEventListener("pointercancel", release);
      svg.appendChild(c);
      return c;
    });
    place();
  }

  function place() {
    const pts = model.get("points");
    const colors = model.get("colors");
    const labels = model.get("labels");
    const locked = model.get("locked");
    pts.forEach((p, i) => {
      const c = handles[i];
      if (!c) return;
      const q = local && local[0] === i ? local[1] : p;  // the handle being dragged stays put
      const [px, py] = toPixel(q[0], q[1]);
      c.setAttribute("cx", px);
      c.setAttribute("cy", py);
      const col = colors[i] || "#333333";
      c.style.fill = col;
      c.style.stroke = col;
      c.style.opacity = locked[i] ? "0.25" : "1";
      c.style.cursor = locked[i] ? "not-allowed" : "grab";
      c.dataset.label = labels[i] || "";
      c.firstChild.textContent =
        (labels[i] || "point") + (locked[i] ? " (locked)" : ": drag me");
    });
  }

  const rebuildIfNeeded = () => (model.get("points").length !== handles.length ? build() : place());
  // every trait this view follows, with what a change of it redraws (removed on unmount)
  const listeners = [
    ["change:points", rebuildIfNeeded],
    ["change:colors", place],
    ["change:labels", place],
    ["change:locked", place],
    ["change:box", build],
    ["change:radius", build],
  ];
  listeners.forEach(([event, handler]) => model.on(event, handler));
  model.on("msg:custom", onMsg);
  build();
  return () => {
    clearTimeout(timer);
    model.off("msg:custom", onMsg);
    listeners.forEach(([event, handler]) => model.off(event, handler));
  };
}

export default { render };
"""


@dataclass(frozen=True)
class PlotBox:
    """Where a plotly figure's plot area is, in pixels, and which data window it shows.

    ``width`` and ``height`` are the plot area (``total_width`` minus the left and right margins,
    ``total_height`` minus the top and bottom ones); ``x0..x1`` and ``y0..y1`` the axis ranges.
    A data point ``(x, y)`` is drawn at ``left + (x - x0) / (x1 - x0) * width`` across and
    ``top + (y1 - y) / (y1 - y0) * height`` down.
    """

    total_width: int
    total_height: int
    left: int
    top: int
    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def square(
        cls,
        lo: float,
        hi: float,
        *,
        size: int = 440,
        left: int = 45,
        right: int = 15,
        top: int = 40,
        bottom: int = 80,
    ) -> PlotBox:
        """A ``size`` x ``size`` pixel plot area showing ``[lo, hi]^2`` (equal scales)."""
        if not hi > lo:
            raise ValueError(f"the data window needs hi > lo, got [{lo}, {hi}]")
        if size < 50:
            raise ValueError(f"a plot area under 50 pixels is not draggable, got {size}")
        return cls(
            total_width=left + size + right,
            total_height=top + size + bottom,
            left=left,
            top=top,
            width=size,
            height=size,
            x0=float(lo),
            x1=float(hi),
            y0=float(lo),
            y1=float(hi),
        )

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """The pixel ``(across, down)`` of the data point ``(x, y)`` (the JavaScript's formula)."""
        px = self.left + (x - self.x0) / (self.x1 - self.x0) * self.width
        py = self.top + (self.y1 - y) / (self.y1 - self.y0) * self.height
        return px, py

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def pinned_layout(box: PlotBox) -> dict[str, Any]:
    """plotly layout settings that put the plot area exactly where ``box`` says: fixed size and
    margins (``autoexpand`` off, so a long legend cannot move the plot), the axis ranges, equal
    scales, and no zoom or pan (``fixedrange``, ``dragmode=False``) that would move the data
    under the handles."""
    return dict(
        width=box.total_width,
        height=box.total_height,
        margin=dict(
            l=box.left,
            r=box.total_width - box.left - box.width,
            t=box.top,
            b=box.total_height - box.top - box.height,
            autoexpand=False,
        ),
        xaxis=dict(range=[box.x0, box.x1], zeroline=False, fixedrange=True),
        yaxis=dict(range=[box.y0, box.y1], zeroline=False, fixedrange=True),
        dragmode=False,
    )


class DragPoints(anywidget.AnyWidget):
    """Handles the mouse can drag, drawn over a plot area (:class:`PlotBox`).

    Traits (all synced with the browser): ``points`` (list of ``[x, y]`` in data coordinates,
    written by a drag, clamped to the box), ``colors`` and ``labels`` (one per point),
    ``locked`` (a point that may not be dragged, e.g. a guide placed by a rule), ``box``
    (:meth:`PlotBox.as_dict`) and ``radius`` (pixels).
    """

    _esm = _ESM
    points = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    colors = traitlets.List(traitlets.Unicode()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    locked = traitlets.List(traitlets.Bool()).tag(sync=True)
    box = traitlets.Dict().tag(sync=True)
    radius = traitlets.Int(9).tag(sync=True)
    seq = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        points: Sequence[Sequence[float]],
        box: PlotBox,
        *,
        colors: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        radius: int = 9,
    ) -> None:
        pts = [[float(p[0]), float(p[1])] for p in points]
        n = len(pts)
        colors = list(colors) if colors is not None else ["#333333"] * n
        labels = list(labels) if labels is not None else [f"P{i}" for i in range(n)]
        if len(colors) != n or len(labels) != n:
            raise ValueError(
                f"{n} points need {n} colors and labels, got {len(colors)}, {len(labels)}"
            )
        super().__init__(
            points=pts,
            colors=colors,
            labels=labels,
            locked=[False] * n,
            box=box.as_dict(),
            radius=int(radius),
        )

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply a state message from the browser (every observer, e.g. the figure's redraw, runs
        here), then answer a drag's ``seq`` with ``{"ack": seq}``: the browser sends the next
        position only then, so a fast drag never queues up work in the kernel."""
        super().set_state(sync_data)
        if "seq" in sync_data:
            self.send({"ack": int(sync_data["seq"])})


def stack_over(figure: widgets.DOMWidget, layer: DragPoints) -> widgets.Box:
    """``layer`` laid over ``figure``: both in one box, the layer absolutely positioned at the box's
    top left (its JavaScript makes the box ``position: relative``), so the handles sit on the
    plot area that :func:`pinned_layout` pins."""
    width, height = f"{layer.box['total_width']}px", f"{layer.box['total_height']}px"
    under = widgets.Box([figure], layout=widgets.Layout(width=width))  # the figure at full size
    # a fixed size that a flex row (the controls beside it) cannot squeeze: the handles stay put
    size = dict(width=width, min_width=width, height=height, flex="0 0 auto")
    return widgets.Box([under, layer], layout=widgets.Layout(**size))
