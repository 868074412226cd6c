"""bezkit's figure widget (:class:`bezkit.widgets.canvas.Canvas`) and the drag layer's handshake:
what goes on the wire to the browser, read where ipywidgets sends it (``Widget._send``).

The browser draws from the synced traits alone, so the first render cannot miss a message; each
change sends the traits of the traces that changed, and nothing when nothing changed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

import plotly.graph_objects as go

from bezkit.widgets import bezier_widget
from bezkit.widgets.base import update_traces
from bezkit.widgets.canvas import WIRE_DECIMALS, Canvas, trace_json
from bezkit.widgets.drag import DragPoints, PlotBox


@contextmanager
def wire(widget: Any) -> Iterator[list[dict[str, Any]]]:
    """Every message ``widget`` sends while the block runs: ``{"state": {...}}`` for a state
    update (only the traits in it are sent), ``{"custom": ...}`` for a custom message."""
    sent: list[dict[str, Any]] = []
    original = widget._send

    def record(msg: dict[str, Any], buffers: Any = None) -> None:
        if msg.get("method") == "update":
            sent.append({"state": dict(msg["state"])})
        elif msg.get("method") == "custom":
            sent.append({"custom": msg["content"]})
        original(msg, buffers=buffers)

    widget._send = record
    try:
        yield sent
    finally:
        del widget._send


def traits_sent(sent: list[dict[str, Any]]) -> list[set[str]]:
    return [set(m["state"]) for m in sent if "state" in m]


def two_traces() -> Canvas:
    return Canvas(
        go.Figure(
            data=[
                go.Scatter(name="a", x=[0.0, 1.0], y=[0.0, 1.0]),
                go.Scatter(name="b", x=[0.0, 1.0], y=[1.0, 0.0], mode="markers"),
            ],
            layout=dict(width=300, height=200, title=dict(text="two")),
        )
    )


def test_the_first_state_holds_every_trace_and_the_layout():
    c = two_traces()
    state = c.get_state()
    assert state["n_traces"] == 2
    assert state["t0"]["name"] == "a" and state["t0"]["y"] == [0.0, 1.0]
    assert state["t1"]["mode"] == "markers"
    assert state["fig_layout"]["title"]["text"] == "two"
    assert state["fig_layout"]["width"] == 300
    assert len(c._esm) < 40_000, "the front end is meant to stay small (canvas.js)"


def test_a_change_of_one_trace_sends_that_trace_only():
    c = two_traces()
    with wire(c) as sent:
        update_traces(c, {"b": dict(y=[5.0, 6.0])})
    assert traits_sent(sent) == [{"t1"}]
    assert sent[0]["state"]["t1"]["y"] == [5.0, 6.0]
    assert list(c.data[1].y) == [5.0, 6.0]  # the Python figure keeps the values


def test_nothing_is_sent_when_nothing_changed():
    c = two_traces()
    with wire(c) as sent:
        update_traces(c, {"a": dict(x=[0.0, 1.0], y=[0.0, 1.0])})
        c.data[1].mode = "markers"
    assert sent == []
    assert c.sent == {"traces": 0, "layout": 0}


def test_a_layout_change_sends_the_layout_and_no_trace():
    c = two_traces()
    with wire(c) as sent:
        c.update_layout({"yaxis.title.text": "W2"})
    assert traits_sent(sent) == [{"fig_layout"}]
    assert sent[0]["state"]["fig_layout"]["yaxis"]["title"]["text"] == "W2"
    assert c.figure.layout.yaxis.title.text == "W2"


def test_a_batch_sends_each_changed_trace_once_in_one_message():
    c = two_traces()
    with wire(c) as sent, c.batch_update():
        c.data[0].y = [3.0, 4.0]
        c.data[0].y = [3.0, 5.0]
        c.data[1].x = [0.0, 1.0]  # unchanged: plotly drops it
        c.update_layout(title_text="changed")
    assert traits_sent(sent) == [{"t0", "fig_layout"}]
    assert sent[0]["state"]["t0"]["y"] == [3.0, 5.0]


def test_the_wire_rounds_floats_and_sends_nan_as_null():
    tr = go.Scatter(name="n", x=[1 / 3, math.nan, math.inf], y=[0.1234567891, 2.0, -1.0])
    js = trace_json(tr)
    assert js["x"] == [round(1 / 3, WIRE_DECIMALS), None, None]
    assert js["y"][0] == round(0.1234567891, WIRE_DECIMALS)


def test_a_canvas_has_a_fixed_set_of_traces():
    c = two_traces()
    with pytest.raises(NotImplementedError, match="fixed set of traces"):
        c.figure.add_trace(go.Scatter(name="c"))


def test_moving_t_sends_only_the_traces_t_moves():
    """The curve, the polygon and the chord do not depend on ``t``: they are not sent."""
    b = bezier_widget(order=2)
    names = {f"t{i}": tr.name for i, tr in enumerate(b.figure.data)}
    with wire(b.figure) as sent:
        b.controls["t"].value = 0.8
    moved = {names[k] for s in traits_sent(sent) for k in s}
    assert moved == {"B(t)", "tangent", "endpoint target"}


def test_a_drag_sends_no_hidden_trace_and_answers_with_an_ack():
    """A drag of the guide: the sliders follow, the visible traces that depend on the guide are
    sent (not the hidden order-3 polygon, not the chord), and only then the drag layer's ack."""
    b = bezier_widget(order=2)
    drag = b.controls["points"]
    assert isinstance(drag, DragPoints)
    names = {f"t{i}": tr.name for i, tr in enumerate(b.figure.data)}
    order: list[str] = []
    with wire(b.figure) as canvas_sent, wire(drag) as drag_sent:
        canvas_send, drag_send = b.figure._send, drag._send

        def note(tag: str, send: Any) -> Any:
            def inner(msg: dict[str, Any], buffers: Any = None) -> None:
                order.append(tag)
                send(msg, buffers=buffers)

            return inner

        b.figure._send, drag._send = note("canvas", canvas_send), note("drag", drag_send)
        drag.set_state({"points": [[-2.0, -1.0], [0.5, 3.0], [2.0, 1.0]], "seq": 7})
    moved = {names[k] for s in traits_sent(canvas_sent) for k in s}
    assert moved == {"control polygon", "curve", "B(t)", "tangent", "endpoint target"}
    assert (b.controls["P1_x"].value, b.controls["P1_y"].value) == (0.5, 3.0)
    assert drag_sent[-1] == {"custom": {"ack": 7}}
    assert order[-1] == "drag" and "canvas" in order[:-1], "the ack must follow the redraw"
    # the hidden polygon is drawn (with the current guide) when it is switched on
    with wire(b.figure) as sent:
        b.controls["elevate"].value = True
    assert "elevated polygon" in {names[k] for s in traits_sent(sent) for k in s}
    assert b.trace("elevated polygon").visible is True
    assert list(b.trace("elevated polygon").x)[1] == pytest.approx((-2.0 + 2 * 0.5) / 3)


def test_a_state_message_without_seq_sends_no_ack():
    drag = DragPoints([[0.0, 0.0]], PlotBox.square(-1.0, 1.0))
    with wire(drag) as sent:
        drag.set_state({"points": [[0.5, 0.5]]})
    assert [m for m in sent if "custom" in m] == []
    assert drag.points == [[0.5, 0.5]]


def test_a_probe_drag_redraws_the_probe_only():
    """Lesson 04's guide widget: dragging the probe cannot move the pairs' curves, guides or
    targets, so they are neither recomputed nor sent; a change of ``t`` redraws them."""
    import torch
    from torch import nn

    from bezkit.widgets import guide_widget

    class Decay(nn.Module):
        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return -x

    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g) + 2
    b = guide_widget(Decay(), x0, x1, max_pairs=6, teacher_steps=10, lim=4.0)
    names = {f"t{i}": tr.name for i, tr in enumerate(b.figure.data)}
    pairs = {"curves", "guides", "teacher state", "B(s)", "B(t)", "target"}
    curves_before = list(b.trace("curves").x)
    view = b.refresh.__self__  # the widget's view: count how often it draws the pairs
    calls = []
    draw_pairs = view._draw_pairs
    view._draw_pairs = lambda *a: calls.append(a) or draw_pairs(*a)
    with wire(b.figure) as sent:
        b.controls["points"].set_state({"points": [[1.0, 1.0]], "seq": 1})
    moved = {names[k] for s in traits_sent(sent) for k in s}
    assert moved and not moved & pairs, f"the probe drag sent {moved}"
    assert calls == [], "a probe drag recomputed the pairs"
    assert (b.controls["probe_x"].value, b.controls["probe_y"].value) == (1.0, 1.0)
    assert list(b.trace("curves").x) == curves_before
    with wire(b.figure) as sent:
        b.controls["t"].value = 0.8
    assert {"B(t)", "target"} <= {names[k] for s in traits_sent(sent) for k in s}
    assert len(calls) == 1
