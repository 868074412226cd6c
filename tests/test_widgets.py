"""bezkit.widgets, headless: set a control's value and check the figure's traces changed as they
should; controls at the ends of their ranges never raise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

import ipywidgets as widgets
import plotly.graph_objects as go

from bezkit.data import get_sampler
from bezkit.paths import BezierPath
from bezkit.widgets import (
    DEFAULT_CONTROL_POINTS,
    WidgetBundle,
    bezier_widget,
    reflow_widget,
    steps_widget,
    trajectory_summary,
)
from bezkit.widgets.canvas import Canvas


def _descendants(box: widgets.Widget) -> list[widgets.Widget]:
    out = []
    for child in getattr(box, "children", ()):
        out += [child, *_descendants(child)]
    return out


def _xy(trace) -> np.ndarray:
    return np.column_stack([np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)])


def _controls_points(bundle: WidgetBundle, order: int) -> torch.Tensor:
    c = bundle.controls
    return torch.tensor(
        [[c[f"P{i}_x"].value, c[f"P{i}_y"].value] for i in range(order + 1)], dtype=torch.float64
    )


def _b(cp: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    order = cp.shape[0] - 1
    tt = torch.tensor([t], dtype=torch.float64)
    guides = tuple(cp[i : i + 1] for i in range(1, order))
    path = BezierPath(order)
    return (
        path.point(cp[:1], cp[-1:], tt, guides)[0].numpy(),
        path.tangent(cp[:1], cp[-1:], tt, guides)[0].numpy(),
    )


# -- Bezier ----------------------------------------------------------------------------------------


def test_bezier_widget_is_a_displayable_bundle():
    b = bezier_widget(order=2)
    assert isinstance(b.box, widgets.Box)
    assert isinstance(b.figure, Canvas)  # bezkit's own figure widget, not plotly's FigureWidget
    assert not any(isinstance(w, go.FigureWidget) for w in _descendants(b.box))
    assert b.figure in _descendants(b.box)
    assert {"P0_x", "P1_y", "P2_x", "t", "chord", "elevate"} <= set(b.controls)
    bundle = b._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    with pytest.raises(KeyError, match="curve"):
        b.trace("no such trace")


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("t", [0.0, 0.25, 0.9, 1.0])
def test_t_slider_moves_the_point_and_arrows(order, t):
    b = bezier_widget(order=order)
    before = _xy(b.trace("B(t)")).copy()
    b.controls["t"].value = t
    cp = _controls_points(b, order)
    point, tangent = _b(cp, t)
    np.testing.assert_allclose(_xy(b.trace("B(t)"))[0], point, atol=1e-12)
    if t != 0.5:
        assert not np.allclose(before, _xy(b.trace("B(t)")))
    tan = _xy(b.trace("tangent"))
    np.testing.assert_allclose(tan[0], point, atol=1e-12)
    np.testing.assert_allclose(tan[1], point + (1 - t) * tangent, atol=1e-12)
    end = _xy(b.trace("endpoint target"))
    np.testing.assert_allclose(end[1], cp[-1].numpy(), atol=1e-9)  # lands on X1
    assert np.isfinite(b.state["geometry"].endpoint_velocity).all()


def test_moving_a_guide_redraws_the_curve_and_polygon():
    b = bezier_widget(order=2)
    before = _xy(b.trace("curve")).copy()
    b.controls["P1_y"].value = -3.0
    cp = _controls_points(b, 2)
    np.testing.assert_allclose(_xy(b.trace("control polygon")), cp.numpy())
    curve = _xy(b.trace("curve"))
    assert not np.allclose(before, curve)
    grid = np.linspace(0, 1, curve.shape[0])
    expected = np.stack([_b(cp, float(s))[0] for s in grid[::10]])
    np.testing.assert_allclose(curve[::10], expected, atol=1e-12)
    np.testing.assert_allclose(curve[0], cp[0].numpy())
    np.testing.assert_allclose(curve[-1], cp[-1].numpy())


def test_moving_an_endpoint_moves_the_endpoint_target():
    b = bezier_widget(order=3)
    b.controls["t"].value = 0.3
    b.controls["P3_x"].value = -1.0
    b.controls["P3_y"].value = 3.5
    np.testing.assert_allclose(_xy(b.trace("endpoint target"))[1], [-1.0, 3.5], atol=1e-9)
    np.testing.assert_allclose(_xy(b.trace("chord"))[1], [-1.0, 3.5])


@pytest.mark.parametrize("order", [2, 3])
def test_chord_toggle_is_degree_elevation_of_the_line(order):
    b = bezier_widget(order=order)
    assert b.state["max_chord_gap"] > 0.1
    b.controls["chord"].value = True
    assert b.state["max_chord_gap"] < 1e-12  # the curve *is* the straight path
    cp = _xy(b.trace("control polygon"))
    x0, x1 = cp[0], cp[-1]
    for i in range(1, order):
        np.testing.assert_allclose(cp[i], x0 + i / order * (x1 - x0), atol=1e-12)
        assert b.controls[f"P{i}_x"].disabled
    if order == 2:
        np.testing.assert_allclose(cp[1], (x0 + x1) / 2, atol=1e-12)  # midpoint guide
    # moving X0 keeps the guides on the chord
    b.controls["P0_x"].value = -4.0
    b.controls["P0_y"].value = 4.0
    assert b.state["max_chord_gap"] < 1e-12
    # the tangent then equals the endpoint target (they coincide on the linear path)
    b.controls["t"].value = 0.6
    np.testing.assert_allclose(_xy(b.trace("tangent")), _xy(b.trace("endpoint target")), atol=1e-9)
    b.controls["chord"].value = False
    assert not b.controls["P1_x"].disabled


def test_elevate_toggle_shows_a_polygon_of_the_same_curve():
    from bezkit.plot import bezier_geometry

    b = bezier_widget(order=2)
    assert not b.trace("elevated polygon").visible
    b.controls["elevate"].value = True
    poly = _xy(b.trace("elevated polygon"))
    assert b.trace("elevated polygon").visible and poly.shape == (4, 2)
    curve = _xy(b.trace("curve"))
    np.testing.assert_allclose(bezier_geometry(poly, n_points=len(curve)).curve, curve, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_extreme_bezier_values_do_not_raise(order):
    b = bezier_widget(order=order)
    limit = b.controls["P0_x"].max
    for value in (b.controls["P0_x"].min, limit):
        for key, ctrl in b.controls.items():
            if key.startswith("P"):
                ctrl.value = value  # every control point on the same corner: degenerate curve
        for t in (0.0, 1.0, 0.999):
            b.controls["t"].value = t
            for name in ("curve", "B(t)", "tangent", "endpoint target"):
                assert np.isfinite(_xy(b.trace(name))).all()
    b.controls["P0_x"].value = 1e9  # outside the range: clipped by the slider
    assert b.controls["P0_x"].value == limit
    b.controls["chord"].value = True
    b.controls["elevate"].value = True
    b.controls["t"].value = 1.0


def test_bezier_widget_rejects_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        bezier_widget(order=0)
    with pytest.raises(ValueError, match="control points"):
        bezier_widget(order=3, control_points=DEFAULT_CONTROL_POINTS[2])


# -- reflow ----------------------------------------------------------------------------------------


def _rounds() -> dict[int, dict]:
    """Round 1: paths through the origin (they cross); round 2: parallel straight paths."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(30, 2, generator=g)
    t = torch.linspace(0, 1, 11)[:, None, None]
    crossing = (1 - t) * x0 + t * (-x0)  # every path through the origin
    parallel = x0 + t * torch.tensor([3.0, 0.0])
    return {
        1: {"trajectory": crossing, "crossings": 435, "straightness": 0.8},
        2: {"trajectory": parallel, "crossings": 0, "straightness": 0.0},
    }


def test_k_slider_switches_the_round():
    rounds = _rounds()
    w = reflow_widget(rounds, max_paths=10, seed=1)
    assert w.state["k"] == 1
    idx = w.state["indices"]
    first = _xy(w.trace("Z1")).copy()
    np.testing.assert_allclose(first, rounds[1]["trajectory"][-1, idx].numpy(), rtol=1e-6)
    w.controls["k"].value = 2
    assert w.state["k"] == 2
    np.testing.assert_allclose(
        _xy(w.trace("Z1")), rounds[2]["trajectory"][-1, idx].numpy(), rtol=1e-6
    )
    assert _xy(w.trace("crossings at k")).tolist() == [[2.0, 0.0]]
    assert _xy(w.trace("straightness at k")).tolist() == [[2.0, 0.0]]
    assert list(w.trace("crossings").y) == [435, 0]
    assert "round k = 2" in w.readout.value
    # the polylines trace holds every shown path, separated by None
    traj = w.trace("trajectories")
    assert sum(v is None for v in traj.x) == len(idx)


def test_chords_toggle_and_its_crossings():
    w = reflow_widget(_rounds(), max_paths=10)
    assert not w.trace("chords").visible
    w.controls["chords"].value = True
    assert w.trace("chords").visible and w.trace("crossing chords").visible
    assert w.state["chord_crossings"] == 10  # every chord passes through the origin
    w.controls["k"].value = 2
    assert w.state["chord_crossings"] == 0


def test_k_at_both_ends_and_gaps_do_not_raise():
    r = _rounds()
    w = reflow_widget({1: r[1], 3: r[2]}, metrics=("crossings", "missing metric"))
    assert [tr.name for tr in w.figure.data if tr.name.endswith("at k")] == ["crossings at k"]
    w.controls["k"].value = 2  # no data for k = 2: the nearest round (ties: the lower) is shown
    assert w.state["k"] == 1
    w.controls["k"].value = 3
    assert w.state["k"] == 3
    w.controls["k"].value = 99  # clipped to the slider's max
    assert w.state["k"] == 3
    w.controls["k"].value = -5
    assert w.state["k"] == 1


def test_reflow_widget_takes_a_list_and_rejects_bad_rounds():
    r = _rounds()
    w = reflow_widget([r[1], r[2]])
    assert w.controls["k"].max == 2
    with pytest.raises(ValueError, match="trajectory"):
        reflow_widget({1: {"crossings": 3}})
    with pytest.raises(ValueError, match="at least one"):
        reflow_widget({})


def test_trajectory_summary_of_a_straight_flow():
    shift = _Shift([1.0, -2.0])
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    s = trajectory_summary(shift, x0, steps=8, m_crossings=20)
    assert s["trajectory"].shape == (9, 50, 2) and s["nfe"] == 8 and s["m"] == 20
    assert s["crossings"] == 0
    assert s["straightness"] == pytest.approx(0.0, abs=1e-10)
    assert s["transport_cost"] == pytest.approx(5.0, rel=1e-5)
    reflow_widget({1: s})  # the summary is a valid round


# -- solver steps ----------------------------------------------------------------------------------


class _Shift(nn.Module):
    """v(x, t) = c: every solver is exact, X1 = X0 + c."""

    def __init__(self, c) -> None:
        super().__init__()
        self.register_buffer("c", torch.tensor(c))

    def forward(self, x, t):
        return self.c.expand_as(x)


class _Grow(nn.Module):
    """v(x, t) = x: Euler with k steps gives (1 + 1/k)^k x0, the exact flow e x0."""

    def forward(self, x, t):
        return x


class _NaN(nn.Module):
    def forward(self, x, t):
        return torch.full_like(x, float("nan"))


def test_steps_slider_updates_samples_nfe_and_w2():
    x0 = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    w = steps_widget(_Grow(), x0, reference=math.e * x0, noise_floor=0.0, max_steps=32)
    assert w.controls["steps"].continuous_update is False
    assert w.state["current"] == {
        "model": "model",
        "method": "euler",
        "steps": 1,
        "nfe": 1,
        "w2": pytest.approx(w.state["current"]["w2"]),
    }
    np.testing.assert_allclose(_xy(w.trace("generated")), 2.0 * x0.numpy(), rtol=1e-5)
    w2_one = w.state["current"]["w2"]
    w.controls["steps"].value = 32
    np.testing.assert_allclose(
        _xy(w.trace("generated")), (1 + 1 / 32) ** 32 * x0.numpy(), rtol=1e-5
    )
    assert w.state["current"]["nfe"] == 32
    assert w.state["current"]["w2"] < w2_one
    assert list(w.trace("W2 euler").x) == [1, 32]
    w.controls["method"].value = "rk4"  # 4 evaluations per step
    assert w.state["current"]["nfe"] == 128
    assert w.state["current"]["w2"] < 1e-3
    assert "NFE = 128" in w.readout.value
    assert set(w.state["results"]) == {("euler", 1), ("euler", 32), ("rk4", 32)}
    # the paths trace shows the solver's polyline: steps + 1 points per path
    paths = w.trace("paths")
    n_paths = sum(v is None for v in paths.x)
    assert len(paths.x) == n_paths * (32 + 2)


def test_steps_widget_with_samplers_and_an_exact_flow():
    src, tgt = get_sampler("gaussian"), get_sampler("moons")
    w = steps_widget(
        _Shift([0.5, 0.0]), src, target=tgt, n=100, max_steps=4, methods=("euler", "heun")
    )
    assert w.state["noise_floor"] > 0
    x0 = w.state["x0"]
    np.testing.assert_allclose(
        _xy(w.trace("generated")), (x0 + torch.tensor([0.5, 0.0])).numpy(), rtol=1e-5, atol=1e-6
    )
    assert list(w.trace("noise floor").y) == [w.state["noise_floor"]] * 2
    w.controls["steps"].value = 4
    w.controls["method"].value = "heun"
    assert w.state["current"]["nfe"] == 8


def test_a_diverging_model_is_reported_not_raised():
    x0 = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    w = steps_widget(_NaN(), x0, reference=x0, max_steps=3)
    assert math.isnan(w.state["current"]["w2"])
    assert "NaN" in w.readout.value
    w.controls["steps"].value = 3
    w.controls["steps"].value = 1000  # clipped to max_steps
    assert w.state["current"]["steps"] == 3


def test_steps_widget_without_a_reference_and_bad_methods():
    x0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    w = steps_widget(_Shift([1.0, 1.0]), x0, max_steps=2)
    assert math.isnan(w.state["current"]["w2"]) and "W2" not in w.readout.value
    with pytest.raises(ValueError, match="fixed-step"):
        steps_widget(_Shift([1.0, 1.0]), x0, methods=("dopri5",))
