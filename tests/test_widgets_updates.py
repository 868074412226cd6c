"""What the widgets send to the browser: only traces that changed, never a placeholder, and what
the browser holds is the Python figure.

plotly's ``FigureWidget`` sent a ``batch_update()`` over several traces as one ``Plotly.update``
that filled a trace which did not set a property with ``"_undefined_"``, and its front end drew
that as the trace's data (curves vanished). bezkit's :class:`~bezkit.widgets.canvas.Canvas` sends
each changed trace's whole JSON as its own synced trait (``t0``, ``t1``, ...). Every message is
read here as it goes on the wire (``Widget._send``); after each drive, the synced traits must equal
the figure's traces (the state a newly opened view would draw).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

import plotly.graph_objects as go

from bezkit.data import get_sampler
from bezkit.methods import branched_from_teacher, new_mlp
from bezkit.widgets import (
    bdense_widget,
    bezier_widget,
    chains_widget,
    compare_steps_widget,
    error_accumulation_widget,
    guide_widget,
    reflow_widget,
    steps_widget,
    student_widget,
)
from bezkit.widgets.base import update_traces
from bezkit.widgets.canvas import Canvas, trace_json


@contextmanager
def wire(fig: Canvas) -> Iterator[list[dict[str, Any]]]:
    """The state updates ``fig`` sends while the block runs (the traits in each message)."""
    sent: list[dict[str, Any]] = []
    original = fig._send

    def record(msg: dict[str, Any], buffers: Any = None) -> None:
        if msg.get("method") == "update":
            sent.append(dict(msg["state"]))
        original(msg, buffers=buffers)

    fig._send = record
    try:
        yield sent
    finally:
        del fig._send


def _undefined(sent: list[dict[str, Any]]) -> list[str]:
    """Every trait of ``sent`` that carries plotly's ``"_undefined_"`` placeholder."""
    return [k for msg in sent for k, v in msg.items() if "_undefined_" in json.dumps(v)]


def _traces_of(sent: list[dict[str, Any]]) -> set[int]:
    return {int(k[1:]) for msg in sent for k in msg if k[0] == "t" and k[1:].isdigit()}


def _in_sync(fig: Canvas) -> None:
    """The browser's state (the synced traits) is the Python figure."""
    state = fig.get_state()
    for i, tr in enumerate(fig.data):
        assert state[f"t{i}"] == trace_json(tr), f"trace {i} ({tr.name}) out of sync"


def _check(fig: Canvas, drive: Callable[[], None], *, at_least: int = 2) -> None:
    """``drive()`` sends updates of at least ``at_least`` traces, no placeholder, and leaves the
    synced traits equal to the figure."""
    with wire(fig) as sent:
        drive()
    assert len(_traces_of(sent)) >= at_least, f"only traces {_traces_of(sent)} were updated"
    assert _undefined(sent) == []
    _in_sync(fig)


# -- the canvas itself -----------------------------------------------------------------------------


def _two_traces() -> Canvas:
    return Canvas(
        go.Figure(
            data=[
                go.Scatter(name="a", x=[0, 1], y=[0, 1]),
                go.Scatter(name="b", x=[0, 1], y=[1, 0]),
            ]
        )
    )


def test_a_batch_over_two_traces_sends_no_placeholder():
    """What broke plotly's front end: ``b`` keeps its x inside a batch over both traces."""
    fig = _two_traces()
    with wire(fig) as sent, fig.batch_update():
        fig.data[0].x, fig.data[0].y = [2, 3], [4, 5]
        fig.data[1].x, fig.data[1].y = [0, 1], [7, 8]  # x unchanged: dropped by plotly
    assert _undefined(sent) == [] and _traces_of(sent) == {0, 1}
    assert fig.t1["x"] == [0, 1] and fig.t1["y"] == [7, 8]
    _in_sync(fig)


def test_update_traces_sends_every_value_and_never_the_placeholder():
    fig = _two_traces()
    with wire(fig) as sent:
        update_traces(fig, {"a": dict(x=[2, 3], y=[4, 5]), "b": dict(x=[0, 1], y=[7, 8])})
    assert _undefined(sent) == []
    assert _traces_of(sent) == {0, 1}
    assert list(fig.data[0].x) == [2, 3] and list(fig.data[1].y) == [7, 8]
    with wire(fig) as sent:
        update_traces(fig, {"a": dict(visible=False), "b": dict(line=dict(color="red"))})
    assert _undefined(sent) == [] and fig.data[0].visible is False
    assert fig.data[1].line.color == "red" and fig.t1["line"]["color"] == "red"
    _in_sync(fig)
    with pytest.raises(KeyError, match="no trace 'c'; traces: \\['a', 'b'\\]"):
        update_traces(fig, {"c": dict(x=[1])})


# -- every widget ----------------------------------------------------------------------------------


class _Decay(nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -x


class _Grow(nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x


def test_bezier_widget_sends_no_placeholder():
    b = bezier_widget(order=2)

    def drive() -> None:
        b.controls["P1_x"].value = 0.5  # the chord does not move
        b.controls["elevate"].value = True  # one trace's visibility only
        b.controls["points"].points = [[-2.0, -1.0], [1.0, 1.0], [2.0, 2.0]]

    _check(b.figure, drive, at_least=4)


def test_reflow_widget_sends_no_placeholder():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(20, 2, generator=g)
    t = torch.linspace(0, 1, 5)[:, None, None]
    rounds = {  # the same Z0 and the same straightness in both rounds: unchanged values
        1: {"trajectory": (1 - t) * x0 - t * x0, "crossings": 10, "straightness": 0.0},
        2: {"trajectory": x0 + t * torch.tensor([3.0, 0.0]), "crossings": 0, "straightness": 0.0},
    }
    b = reflow_widget(rounds, max_paths=10)

    def drive() -> None:
        b.controls["chords"].value = True
        b.controls["k"].value = 2

    _check(b.figure, drive, at_least=4)


def test_steps_widgets_send_no_placeholder():
    x0 = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    b = steps_widget(_Grow(), x0, reference=2.5 * x0, max_steps=8, m_paths=5)

    def drive() -> None:
        b.controls["steps"].value = 4
        b.controls["method"].value = "heun"

    _check(b.figure, drive, at_least=3)
    c = compare_steps_widget({"grow": _Grow(), "decay": _Decay()}, x0, 2.5 * x0, max_steps=4)
    _check(c.figure, lambda: setattr(c.controls["model"], "value", "decay"), at_least=2)


def test_guide_and_student_widgets_send_no_placeholder():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g) + 2
    b = guide_widget(_Decay(), x0, x1, max_pairs=6, teacher_steps=10, lim=4.0)

    def drive() -> None:
        b.controls["t"].value = 0.8  # curves and guides stay
        b.controls["target"].value = "tangent"  # one trace's colour
        b.controls["points"].points = [[1.0, 1.0]]

    _check(b.figure, drive, at_least=4)
    src, tgt = get_sampler("8gaussians"), get_sampler("moons")
    teacher = new_mlp(2, hidden=16, depth=2, seed=0)
    guides = guide_widget(teacher, x0, x1, max_pairs=6, teacher_steps=10)
    opts = dict(n_eval=64, n_pairs=64, train_steps=2, batch_size=32, steps=(1, 2), m_paths=5)
    s = student_widget(guides, src, tgt, progress=False, **opts)

    def train_two() -> None:
        s.controls["train"].click()
        guides.controls["s"].value = 0.3
        s.controls["train"].click()  # the first student becomes an "earlier" one

    _check(s.figure, train_two, at_least=3)


def test_bdense_widget_sends_no_placeholder():
    teacher = new_mlp(2, hidden=16, depth=2, seed=3)
    students = {k: branched_from_teacher(teacher, k) for k in (1, 2, 4)}
    other = {4: branched_from_teacher(new_mlp(2, hidden=16, depth=2, seed=4), 4)}
    x0 = torch.randn(30, 2, generator=torch.Generator().manual_seed(1))
    b = bdense_widget(students, teacher, x0, without_restarts=other, max_points=10)

    # Counted are only updates guaranteed by construction: the four error curves' opacities (each
    # is the highlighted one once) and the other K = 4 student's branch outputs (another network).
    # Whether K = 4, 2, 1 move any point is left open: the students' branches are copies of the
    # teacher's output layer, so their points are equal or differ by rounding, by CPU.
    def drive() -> None:
        b.controls["K"].value = 2
        b.controls["K"].value = 1
        b.controls["K"].value = 4
        b.controls["restarts"].value = False  # the other K = 4 student: other branch outputs

    _check(b.figure, drive, at_least=5)
    assert np.isfinite(np.asarray(b.trace("error K=4").y, dtype=float)).all()


def _results() -> dict[str, Any]:
    """A small results file (schema 2): two chains over three rounds and two students at two
    rounds, three seeds of two evaluation draws; every number differs by chain, round and seed."""
    seeds = (0, 1, 2)

    def values(base: float, seed: int) -> list[float]:
        return [base + 0.01 * seed, base + 0.01 * seed + 0.003]

    chains = [
        {
            "chain": kind,
            "k": k,
            "seed": s,
            "metrics": {
                "w2": {"1": values(0.5 + base * k, s), "16": values(base * k, s)},
                "reverse_x0_w2": values(0.1, s),
                "straightness": [1.0 / k] * 2,
                "crossings_per_trajectory": [2.0 / k] * 2,
            },
            "trained_on": {"x0_w2": values(0.05, s), "x1_w2": values(0.04, s)},
        }
        for kind, base in (("reflow", 0.2), ("bezier", 0.1))
        for k in (1, 2, 3)
        for s in seeds
    ]
    runs = [
        {"method": m, "k": k, "seed": s, "metrics": {"w2": {"1": values(base * k, s)}}}
        for m, base in (("rf-distill", 0.3), ("bezier-quadratic-2-endpoint", 0.25))
        for k in (1, 2)
        for s in seeds
    ]
    exp = {"source": "8gaussians", "target": "moons", "seeds": list(seeds),
           "noise_floor": [0.1, 0.12], "runs": runs, "chains": chains}  # fmt: skip
    return {"schema_version": 2, "experiments": [exp]}


def test_chains_widget_sends_no_placeholder():
    b = chains_widget(_results())

    def drive() -> None:
        b.controls["k"].value = 2  # the means stay, the marker and the differences move
        b.controls["chains"].value = ("bezier",)  # the reflow chain's curve empties
        b.controls["field"].value = "straightness"  # no noise floor any more
        b.controls["against"].value = "round1"

    _check(b.figure, drive, at_least=4)
    assert list(b.trace("bezier").y) == pytest.approx([1.0, 0.5, 1 / 3])
    assert list(b.trace("differences").y) == ["bezier"]


def test_results_widget_sends_no_placeholder():
    b = error_accumulation_widget(_results())

    def drive() -> None:
        b.controls["field"].value = "w2_one_step"
        b.controls["view"].value = "students"  # the chains empty, the students fill
        b.controls["k"].value = 1
        b.controls["view"].value = "chains"

    _check(b.figure, drive, at_least=5)
    assert list(b.trace("bezier - reflow").y) == pytest.approx([-0.1, -0.2, -0.3])
    assert list(b.trace("rf-distill").x) == []
