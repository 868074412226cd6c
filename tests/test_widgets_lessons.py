"""The widgets of lessons 04-06 (bezkit.widgets, appended part), headless: set a control, read the
figure's traces back; controls at the ends of their ranges never raise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")


from bezkit.arrays import subsample
from bezkit.methods import branched_from_teacher, new_mlp
from bezkit.metrics import wasserstein2
from bezkit.paths import BezierPath
from bezkit.plot import branch_errors
from bezkit.widgets import (
    WidgetBundle,
    bdense_widget,
    compare_steps_widget,
    guide_widget,
)


def _xy(trace) -> np.ndarray:
    return np.column_stack([np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)])


def _finite(trace) -> np.ndarray:
    xy = _xy(trace)
    return xy[np.isfinite(xy).all(axis=1)]


class Decay(nn.Module):
    """``v(x, t) = -x``: one Euler step to s gives ``(1 - s) x``, the ODE ``e^{-s} x``."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -x


class Shift(nn.Module):
    def __init__(self, d: float) -> None:
        super().__init__()
        self.d = d

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.d)


def _pairs(n: int = 20):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) + 2


# -- guide_widget ----------------------------------------------------------------------------------


def test_guide_widget_control_places_the_teacher_state():
    x0, x1 = _pairs()
    b = guide_widget(Decay(), x0, x1, max_pairs=None)
    assert isinstance(b, WidgetBundle)
    assert {"s", "placement", "guide_state", "target", "t"} <= set(b.controls)
    b.controls["s"].value = 0.3
    want = (1 - 0.3) * x0.double().numpy()  # one Euler step of v = -x
    np.testing.assert_allclose(_xy(b.trace("teacher state")), want, atol=1e-6)
    np.testing.assert_allclose(_xy(b.trace("guides")), want, atol=1e-6)
    assert b.state["gap_at_s"] > 0.01  # a control guide is not on the curve


def test_guide_widget_interpolate_passes_through_the_state():
    x0, x1 = _pairs()
    b = guide_widget(Decay(), x0, x1, placement="interpolate", max_pairs=None)
    for s in (0.05, 0.5, 0.95):
        b.controls["s"].value = s
        assert b.state["gap_at_s"] < 1e-6
        np.testing.assert_allclose(_xy(b.trace("B(s)")), _xy(b.trace("teacher state")), atol=1e-6)


def test_guide_widget_ode_state_differs_from_one_euler_step():
    x0, x1 = _pairs()
    b = guide_widget(Decay(), x0, x1, s=0.5, max_pairs=None, teacher_steps=200)
    euler = _xy(b.trace("teacher state")).copy()
    b.controls["guide_state"].value = "ode"
    ode = _xy(b.trace("teacher state"))
    np.testing.assert_allclose(euler, 0.5 * x0.numpy(), atol=1e-6)
    np.testing.assert_allclose(ode, math.exp(-0.5) * x0.numpy(), atol=5e-3)


@pytest.mark.parametrize("t", [0.0, 0.4, 0.99, 1.0])
def test_guide_widget_targets(t):
    x0, x1 = _pairs()
    b = guide_widget(Decay(), x0, x1, max_pairs=8)
    b.controls["t"].value = t
    assert b.state["landing_error"] < 1e-5  # endpoint target: one step lands on X1
    b.controls["target"].value = "tangent"
    arrows = _finite(b.trace("target")).reshape(-1, 2, 2)
    points = _xy(b.trace("B(t)"))
    np.testing.assert_allclose(arrows[:, 0], points, atol=1e-9)
    a, c = b.state["x0"].double(), b.state["x1"].double()
    sample = BezierPath(2).sample(
        a, c, torch.full((8,), t, dtype=torch.float64), (b.state["guides"],)
    )
    np.testing.assert_allclose(
        arrows[:, 1] - arrows[:, 0], (1 - t) * sample.dx_t.numpy(), atol=1e-9
    )


def test_guide_widget_path_gap_is_zero_for_a_straight_teacher():
    x0, _ = _pairs()
    d = 1.5
    x1 = x0 + d  # the teacher v = d carries x0 straight to x1
    b = guide_widget(Shift(d), x0, x1, max_pairs=None, teacher_steps=10)
    b.controls["placement"].value = "interpolate"
    assert b.state["path_gap"] < 1e-5
    with pytest.raises(ValueError, match="placement"):
        guide_widget(Shift(d), x0, x1, placement="middle")
    with pytest.raises(ValueError, match=r"must both be \(n, 2\)"):
        guide_widget(Shift(d), x0, x1[:3])


# -- compare_steps_widget --------------------------------------------------------------------------


def test_compare_steps_widget_caches_and_draws_every_model():
    x0, ref = _pairs(64)
    models = {"slow": Shift(0.5), "exact": Shift(2.0)}
    b = compare_steps_widget(models, x0, ref, noise_floor=0.1, max_steps=8)
    assert set(b.state["results"]) == {("slow", 1), ("exact", 1)}  # precomputed
    assert b.trace("W2 exact").y[0] == pytest.approx(wasserstein2(x0 + 2.0, ref))
    b.controls["model"].value = "exact"
    b.controls["steps"].value = 8
    assert b.state["current"]["steps"] == 8 and b.state["current"]["nfe"] == 8
    np.testing.assert_allclose(_xy(b.trace("generated")), (x0 + 2.0).numpy(), atol=1e-5)
    assert list(b.trace("W2 exact").x) == [1, 8]
    assert list(b.trace("W2 slow").x) == [1]
    assert list(b.trace("noise floor").y) == [0.1, 0.1]
    assert "NFE = 8" in b.readout.value
    with pytest.raises(ValueError, match="unknown model"):
        compare_steps_widget(models, x0, ref, model="other")
    with pytest.raises(ValueError, match="at least one"):
        compare_steps_widget({}, x0, ref)


# -- bdense_widget ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bdense_setup():
    torch.manual_seed(0)
    teacher = new_mlp(2, hidden=16, depth=2, seed=3)
    students = {k: branched_from_teacher(teacher, k) for k in (1, 2, 4)}
    g = torch.Generator().manual_seed(1)
    return teacher, students, torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g)


def test_bdense_widget_branches_errors_and_hops(bdense_setup):
    teacher, students, x0, ref = bdense_setup
    b = bdense_widget(students, teacher, x0, reference=ref, noise_floor=0.2, max_points=10)
    assert b.controls["K"].value == 4 and b.controls["j"].max == 4
    assert set(b.state["w2"][4]) == {1, 2, 4} and set(b.state["w2"][1]) == {1}
    assert b.state["w2"][4][2] == pytest.approx(wasserstein2(students[4].sample(x0, 2), ref))
    err = b.state["errors"][4]
    assert err.shape == (4,)
    from bezkit.solvers import solve_ode

    traj = solve_ode(teacher, x0, steps=100, record=True).trajectory
    want = branch_errors(students[4], x0, torch.stack([traj[25 * j] for j in range(1, 5)]))
    np.testing.assert_allclose(err, want, rtol=1e-5)
    assert list(b.trace("error K=4").y) == pytest.approx(err.tolist())
    b.controls["j"].value = 2  # t_j = 0.5
    assert b.state["t_j"] == 0.5
    assert len(b.trace("branch j").x) == 10
    b.controls["K"].value = 2  # keeps t_j = 0.5: j = 1
    assert b.controls["j"].max == 2 and b.state["j"] == 1 and b.state["t_j"] == 0.5
    b.controls["K"].value = 1
    assert b.state["j"] == 1 and b.controls["j"].max == 1
    assert "sparse" in b.readout.value
    b.controls["K"].value = 4
    assert b.state["j"] == 4  # t = 1 stays t = 1
    assert b.trace("error K=4").opacity == 1.0 and b.trace("error K=1").opacity < 1.0


def test_bdense_widget_updates_never_send_undefined_placeholders(bdense_setup):
    """A ``batch_update`` that sets a property on some traces only sends the other traces that
    property as plotly's ``Undefined`` ("_undefined_" on the wire), which the anywidget front end
    applies as data: the per-branch error curves vanished in the browser."""
    from plotly.basedatatypes import Undefined

    teacher, students, x0, _ = bdense_setup
    b = bdense_widget(students, teacher, x0, max_points=10)
    sent: list[dict] = []
    fig = b.figure.figure  # the plotly figure the canvas draws
    for name in ("_send_update_msg", "_send_restyle_msg"):
        send = getattr(fig, name)

        def spy(restyle_data, *args, _send=send, **kwargs):
            sent.append(restyle_data)
            return _send(restyle_data, *args, **kwargs)

        setattr(fig, name, spy)
    # Only changes guaranteed by construction: a new K sets the error curves' opacities, and a new
    # branch time t_j moves the "current branch" marker's x (t_j = 1 -> 0.5 -> 1). What the
    # untrained students' outputs do is left open: their branches are copies of the teacher's
    # output layer, so whether K = 4, 2, 1 give bit-identical points depends on the CPU's kernels.
    b.controls["K"].value = 2  # j = 2, t_j = 1 (opacity)
    b.controls["j"].value = 1  # t_j = 0.5 (x)
    b.controls["K"].value = 1  # j = 1, t_j = 1 (opacity, x)
    props = {prop for restyle in sent for prop in restyle}
    assert {"x", "opacity"} <= props, f"the widget sent only {props}"
    for restyle in sent:
        for prop, values in restyle.items():
            assert all(v is not Undefined for v in values), f"{prop!r} sent as undefined"
    assert b.trace("error K=1").opacity == 1.0 and b.trace("error K=4").opacity < 1.0


def test_bdense_widget_checks_its_students(bdense_setup):
    teacher, students, x0, _ = bdense_setup
    b = bdense_widget({2: students[2]}, teacher, x0, K=7)
    assert b.state["K"] == 2 and b.state["w2"] == {2: {}}
    with pytest.raises(ValueError, match="2 branches"):
        bdense_widget({2: students[4]}, teacher, x0)
    with pytest.raises(ValueError, match="at least one"):
        bdense_widget({}, teacher, x0)


def test_bdense_widget_sets_the_students_without_restarts_beside_the_others(bdense_setup):
    """Lesson 06's contrast: at the same K, a student trained with restarts and one without."""
    teacher, students, x0, ref = bdense_setup
    other = branched_from_teacher(new_mlp(2, hidden=16, depth=2, seed=5), 4)  # another student
    b = bdense_widget(
        students, teacher, x0, without_restarts={4: other}, reference=ref, K=4, max_points=10
    )
    restarts = b.controls["restarts"]
    assert list(b.controls["K"].options) == [1, 2, 4]
    assert restarts.value is True and not restarts.disabled  # K = 4 has both students
    w2_with = b.state["w2"][4][4]
    w2_without = b.state["w2_without_restarts"][4][4]
    assert w2_without == pytest.approx(wasserstein2(other.sample(x0, 4), ref))
    assert w2_with == pytest.approx(wasserstein2(students[4].sample(x0, 4), ref))
    assert f"at 4 hops: {w2_with:.3f} with restarts, {w2_without:.3f} without" in b.readout.value
    draw = subsample(x0.shape[0], 10, 0)
    b.controls["j"].value = 3
    restarts.value = False  # the branch outputs, errors and highlighted curve are the other's
    with torch.no_grad():
        want = other.branches(x0, torch.zeros(len(x0)))[draw, 2]
    np.testing.assert_allclose(b.trace("branch j").x, want[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    err = b.state["errors_without_restarts"][4]
    assert b.trace("current branch").y[0] == pytest.approx(float(err[2]))
    assert b.trace("error K=4, no restarts").line.dash == "dash"
    assert b.trace("error K=4, no restarts").opacity == 1.0 and b.trace("error K=4").opacity < 1
    assert b.state["restarts"] is False and "without restarts" in b.readout.value
    b.controls["K"].value = 2  # only a student with restarts: the toggle shows it, disabled
    assert restarts.value is True and restarts.disabled and b.state["restarts"] is True
    assert b.trace("error K=2").opacity == 1.0
    b.controls["K"].value = 4
    assert not restarts.disabled and b.state["K"] == 4
    with pytest.raises(ValueError, match=r"without_restarts\[4\] must be a BranchedVelocity"):
        bdense_widget(students, teacher, x0, without_restarts={4: students[2]})
    only = bdense_widget({}, teacher, x0, without_restarts={4: other}, max_points=10)
    assert only.controls["restarts"].value is False and only.controls["restarts"].disabled


def test_guide_widget_probe_follows_a_drag_and_its_sliders():
    x0, x1 = _pairs()
    b = guide_widget(Decay(), x0, x1, s=0.4, max_pairs=6, teacher_steps=50, lim=4.0)
    drag = b.controls["points"]
    drag.points = [[1.0, 2.0]]  # what a mouse drag of the probe writes
    assert (b.controls["probe_x"].value, b.controls["probe_y"].value) == (1.0, 2.0)
    p = np.array([1.0, 2.0])
    end = (1 - 1 / 50) ** 50 * p  # 50 Euler steps of v = -x
    np.testing.assert_allclose(_xy(b.trace("probe X1"))[0], end, rtol=1e-5)
    np.testing.assert_allclose(_xy(b.trace("probe guide"))[0], 0.6 * p, rtol=1e-5)  # G = Z(0.4)
    curve = _xy(b.trace("probe curve"))
    np.testing.assert_allclose(curve[0], p, atol=1e-6)
    np.testing.assert_allclose(curve[-1], end, rtol=1e-5)
    assert "probe X0 = (1.00, 2.00)" in b.readout.value
    b.controls["probe_x"].value = -1.5  # the slider moves the handle
    assert drag.points == [[-1.5, 2.0]]
    drag.points = [[9.0, -9.0]]  # clamped into the window
    assert drag.points == [[4.0, -4.0]]
    b.controls["placement"].value = "interpolate"  # the probe's curve passes through Z(s)
    assert b.state["probe"]["path_gap"] >= 0.0
