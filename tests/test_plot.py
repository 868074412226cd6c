"""bezkit.plot: the static figures draw what they say, headlessly (Agg); no backend is forced."""

from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")  # the tests choose the backend; bezkit.plot must not

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection

from bezkit import plot as P
from bezkit.couplings import exact_ot_permutation
from bezkit.metrics import coupling_crossings
from bezkit.paths import BezierPath


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_import_does_not_choose_a_backend():
    code = (
        "import matplotlib; matplotlib.use('svg'); import bezkit.plot, bezkit.widgets; "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"


def test_plot_samples_draws_each_set_in_its_role_colour():
    x0 = torch.randn(50, 2, generator=_gen(0))
    x1 = torch.randn(30, 2, generator=_gen(1))
    ax = P.plot_samples({"source": x0, "target": x1})
    cols = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(cols) == 2
    np.testing.assert_allclose(cols[0].get_offsets(), x0.numpy(), rtol=1e-6)
    np.testing.assert_allclose(cols[1].get_offsets(), x1.numpy(), rtol=1e-6)
    assert matplotlib.colors.to_hex(cols[0].get_facecolor()[0]) == P.COLORS["source"]
    assert matplotlib.colors.to_hex(cols[1].get_facecolor()[0]) == P.COLORS["target"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["source", "target"]


def test_plot_samples_subsamples_with_a_seed_and_reuses_given_axes():
    x = np.random.default_rng(0).normal(size=(500, 2))
    _, ax = plt.subplots()
    out = P.plot_samples(x, ax=ax, max_points=100, seed=3)
    assert out is ax
    a = ax.collections[0].get_offsets()
    b = P.plot_samples(x, max_points=100, seed=3).collections[0].get_offsets()
    assert a.shape == (100, 2)
    np.testing.assert_array_equal(a, b)


def test_plot_samples_rejects_non_2d_points():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        P.plot_samples(np.zeros((5, 3)))


def test_plot_trajectories_draws_one_polyline_per_path():
    x0 = torch.randn(40, 2, generator=_gen(0))
    x1 = torch.randn(40, 2, generator=_gen(1))
    t = torch.linspace(0, 1, 11)[:, None, None]
    traj = (1 - t) * x0 + t * x1  # (11, 40, 2)
    ax = P.plot_trajectories(traj, max_paths=25, seed=1)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1
    segs = lines[0].get_segments()
    assert len(segs) == 25 and all(s.shape == (11, 2) for s in segs)
    idx = P.subsample(40, 25, seed=1)
    np.testing.assert_allclose(segs[0], traj[:, idx[0]].numpy(), rtol=1e-6, atol=1e-7)
    starts = next(c for c in ax.collections if isinstance(c, PathCollection)).get_offsets()
    np.testing.assert_allclose(starts, x0[idx].numpy(), rtol=1e-6)


def test_plot_trajectories_rejects_a_bad_shape():
    with pytest.raises(ValueError, match="T\\+1, n, 2"):
        P.plot_trajectories(torch.zeros(1, 5, 2))


def test_coupling_segments_highlight_exactly_the_crossing_ones():
    # two segments forming an X, and one far away that crosses nothing
    x0 = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    x1 = torch.tensor([[1.0, 1.0], [1.0, 0.0], [6.0, 5.0]])
    np.testing.assert_array_equal(P.crossing_mask(x0, x1), [True, True, False])
    ax = P.plot_coupling_segments(x0, x1)
    red = [
        c
        for c in ax.collections
        if isinstance(c, LineCollection)
        and matplotlib.colors.to_hex(c.get_color()[0]) == P.COLORS["crossing"]
    ]
    grey = [
        c
        for c in ax.collections
        if isinstance(c, LineCollection)
        and matplotlib.colors.to_hex(c.get_color()[0]) == P.COLORS["segment"]
    ]
    assert len(red) == 1 and len(red[0].get_segments()) == 2
    assert len(grey) == 1 and len(grey[0].get_segments()) == 1
    assert ax.get_title().startswith("1 crossing pairs among 3")
    assert ax.get_title().endswith("1 at nearly the same time")  # both reach (0.5, 0.5) at t = 1/2
    marks = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    np.testing.assert_allclose(marks.get_offsets(), [[0.5, 0.5]])


def test_segment_crossings_finds_the_point_and_the_times():
    # segment 0 passes (1, 1) at t = 1/2; segment 1 passes it at t = 1/4
    x0 = torch.tensor([[0.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    x1 = torch.tensor([[2.0, 2.0], [4.0, -2.0], [6.0, 5.0]])
    cr = P.segment_crossings(x0, x1)
    assert len(cr) == 1 and (cr.i[0], cr.j[0]) == (0, 1)
    np.testing.assert_allclose(cr.point[0], [1.0, 1.0])
    np.testing.assert_allclose([cr.t_i[0], cr.t_j[0]], [0.5, 0.25])
    np.testing.assert_allclose(cr.time_gap, [0.25])


def test_ot_segments_never_meet_at_the_same_time():
    """Squared-cost OT: if two linear paths met at the same (x, t), swapping their targets would
    be cheaper. Nearly parallel segments may still cross at different times."""
    x0 = torch.randn(150, 2, generator=_gen(0))
    x1 = torch.randn(150, 2, generator=_gen(1)) + 3
    indep = P.segment_crossings(x0, x1)
    ot = P.segment_crossings(x0, x1[exact_ot_permutation(x0, x1)])
    assert len(ot) < len(indep) / 5
    assert (ot.time_gap > 1e-6).all()
    assert (indep.time_gap < 1e-2).any()
    assert coupling_crossings(x0, x1).pairs == len(indep)
    ax = P.plot_coupling_segments(
        x0, x1[exact_ot_permutation(x0, x1)], max_pairs=None, same_time=1e-6
    )
    assert ax.get_title().startswith(f"{len(ot)} crossing pairs among 150")
    assert ax.get_title().endswith("0 at nearly the same time")


def test_crossing_mask_agrees_with_the_metric():
    x0 = torch.randn(80, 2, generator=_gen(2))
    x1 = torch.randn(80, 2, generator=_gen(3))
    mask = P.crossing_mask(x0, x1)
    stats = coupling_crossings(x0, x1)
    assert stats.pairs > 0
    assert 2 <= mask.sum() <= 2 * stats.pairs


@pytest.mark.parametrize("t", [0.0, 0.3, 0.999, 1.0])
def test_bezier_geometry_matches_the_path_code(t):
    cp = torch.tensor([[-2.0, -1.0], [-1.0, 2.5], [1.0, -2.5], [2.0, 1.0]], dtype=torch.float64)
    geo = P.bezier_geometry(cp, t)
    path = BezierPath(3)
    tt = torch.tensor([t], dtype=torch.float64)
    guides = (cp[1:2], cp[2:3])
    np.testing.assert_allclose(geo.point, path.point(cp[:1], cp[3:], tt, guides)[0].numpy())
    np.testing.assert_allclose(geo.tangent, path.tangent(cp[:1], cp[3:], tt, guides)[0].numpy())
    np.testing.assert_allclose(geo.curve[0], cp[0].numpy())
    np.testing.assert_allclose(geo.curve[-1], cp[3].numpy())
    assert np.isfinite(geo.endpoint_velocity).all()
    if t < 0.999:  # one Euler step of the remaining time lands on X1
        np.testing.assert_allclose(
            geo.point + (1 - t) * geo.endpoint_velocity, cp[3].numpy(), atol=1e-12
        )


def test_endpoint_target_at_t0_is_the_chord():
    cp = np.array([[0.0, 0.0], [3.0, 4.0], [2.0, 0.0]])
    geo = P.bezier_geometry(cp, 0.0)
    np.testing.assert_allclose(geo.endpoint_velocity, cp[2] - cp[0])
    np.testing.assert_allclose(geo.tangent, 2 * (cp[1] - cp[0]))


def test_degree_elevation_keeps_the_curve():
    line = np.array([[-1.0, 0.5], [2.0, -1.5]])
    quad = P.degree_elevate(line)
    np.testing.assert_allclose(quad[1], line.mean(axis=0))  # midpoint guide
    np.testing.assert_allclose(
        P.bezier_geometry(quad).curve, P.bezier_geometry(line).curve, atol=1e-12
    )
    rng = np.random.default_rng(0)
    for order in (2, 3, 4):
        cp = rng.normal(size=(order + 1, 2))
        up = P.degree_elevate(cp)
        assert up.shape == (order + 2, 2)
        np.testing.assert_allclose(
            P.bezier_geometry(up).curve, P.bezier_geometry(cp).curve, atol=1e-12
        )


def test_plot_bezier_arrows_end_where_they_should():
    cp = np.array([[-2.0, -1.0], [-1.0, 2.5], [2.0, 1.0]])
    t = 0.4
    ax = P.plot_bezier(cp, t=t, show_chord=True)
    geo = P.bezier_geometry(cp, t)
    arrows = [a for a in ax.texts if hasattr(a, "arrow_patch") and a.arrow_patch is not None]
    assert len(arrows) == 2
    ends = [np.asarray(a.xy) for a in arrows]
    np.testing.assert_allclose(ends[0], geo.point + (1 - t) * geo.tangent)
    np.testing.assert_allclose(ends[1], cp[-1], atol=1e-12)  # the endpoint target hits X1
    curve = next(ln for ln in ax.lines if ln.get_label().startswith("$B(t)$"))
    np.testing.assert_allclose(curve.get_xydata(), geo.curve)


def test_plot_bezier_axes_show_the_whole_arrows():
    cp = [[-2.0, -1.0], [-1.5, 2.5], [1.0, -2.5], [2.0, 1.0]]  # the tangent at 1/2 leaves the hull
    ax = P.plot_bezier(cp, t=0.5)
    (x_lo, x_hi), (y_lo, y_hi) = ax.get_xlim(), ax.get_ylim()
    for arrow in (a for a in ax.texts if getattr(a, "arrow_patch", None) is not None):
        x, y = arrow.xy
        assert x_lo <= x <= x_hi and y_lo <= y <= y_hi


def test_plot_bezier_without_t_has_no_arrows_and_extremes_do_not_raise():
    cp = np.zeros((4, 2))  # a degenerate curve: every control point at the origin
    ax = P.plot_bezier(cp, t=None)
    assert not [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None]
    for t in (0.0, 1.0, -3.0, 7.0):  # t outside [0, 1] is clipped
        P.plot_bezier([[0, 0], [1, 1], [2, 0]], t=t)


def test_plot_metric_vs_k_accepts_dicts_lists_and_json_keys():
    ax = P.plot_metric_vs_k(
        {"rf": {"1": 0.5, "3": 0.2, "2": 0.3}, "distill": [0.6, 0.4]}, metric="W2", reference=0.1
    )
    lines = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_array_equal(lines["rf"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["rf"].get_ydata(), [0.5, 0.3, 0.2])
    np.testing.assert_array_equal(lines["distill"].get_xdata(), [1, 2])
    assert lines["noise floor"].get_ydata()[0] == pytest.approx(0.1)
    assert ax.get_ylabel() == "W2"


def test_plot_w2_vs_steps_sorts_steps_numerically_with_a_log_axis():
    w2 = {"1": 1.2, "100": 0.3, "2": 0.8, "8": 0.4}  # as in evaluate_flow(...)["w2"]
    ax = P.plot_w2_vs_steps({"1-RF": w2, "2-RF": {1: 0.5, 8: 0.35}}, noise_floor=0.25)
    lines = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_array_equal(lines["1-RF"].get_xdata(), [1, 2, 8, 100])
    np.testing.assert_array_equal(lines["1-RF"].get_ydata(), [1.2, 0.8, 0.4, 0.3])
    assert "noise floor" in lines and ax.get_xscale() == "log"
    single = P.plot_w2_vs_steps({1: 1.0, 4: 0.5})
    assert [ln.get_label() for ln in single.lines] == ["W2"]


def test_plot_loss_draws_raw_and_smoothed_curves():
    losses = list(np.linspace(2.0, 1.0, 120))
    ax = P.plot_loss({"1-RF": losses, "2-RF": losses[:10]}, smooth=20)
    assert len(ax.lines) == 4
    assert len(ax.lines[1].get_xdata()) == 120 - 20 + 1
    assert len(ax.lines[3].get_xdata()) == 1  # window clipped to the run's length
    assert ax.get_yscale() == "log"
    P.plot_loss([])  # an empty run draws nothing and does not raise
