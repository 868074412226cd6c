"""The static figures of lessons 04-06 (bezkit.plot, appended part), headlessly (Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # the tests choose the backend; bezkit.plot must not

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.quiver import Quiver

from bezkit import plot as P
from bezkit.couplings import PairPool, Pairs
from bezkit.methods import branched_from_teacher, new_mlp
from bezkit.paths import BezierPath, regression_target


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _pairs(n: int = 40, guides: int = 1, seed: int = 0) -> Pairs:
    g = torch.Generator().manual_seed(seed)
    x0, x1 = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g) + 3
    return Pairs(x0, x1, tuple(torch.randn(n, 2, generator=g) for _ in range(guides)))


def _lines(ax, label: str) -> LineCollection:
    (coll,) = [
        c for c in ax.collections if isinstance(c, LineCollection) and c.get_label() == label
    ]
    return coll


def test_new_names_are_exported():
    for name in ("plot_bezier_pairs", "plot_targets", "plot_branches", "branch_errors",
                 "plot_intervals_by_k", "plot_paired_differences"):  # fmt: skip
        assert name in P.__all__ and callable(getattr(P, name))


@pytest.mark.parametrize("guides", [0, 1, 2])
def test_bezier_pairs_draw_the_curves_of_the_pairs(guides):
    pairs = _pairs(guides=guides)
    ax = P.plot_bezier_pairs(pairs, max_pairs=None, n_points=11)
    curves = _lines(ax, f"Bezier curves, order {guides + 1}")
    segs = curves.get_segments()
    assert len(segs) == 40
    path = BezierPath(guides + 1)
    t = torch.full((40,), 0.3, dtype=torch.float64)
    mid = path.point(
        pairs.x0.double(), pairs.x1.double(), t, tuple(g.double() for g in pairs.guides)
    )
    got = np.stack([s[3] for s in segs])  # grid point 3 of 11 is t = 0.3
    np.testing.assert_allclose(got, mid.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.stack([s[0] for s in segs]), pairs.x0.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.stack([s[-1] for s in segs]), pairs.x1.numpy(), atol=1e-6)
    has_polygon = any(c.get_label() == "control polygons" for c in ax.collections)
    assert has_polygon == bool(guides)


def test_bezier_pairs_inputs_and_subsampling():
    pairs = _pairs(n=100)
    for given in (pairs, PairPool(pairs), (pairs.x0, pairs.x1, pairs.guides[0])):
        ax = P.plot_bezier_pairs(given, max_pairs=10, seed=3)
        assert len(_lines(ax, "Bezier curves, order 2").get_segments()) == 10
    with pytest.raises(ValueError, match="order 3 needs 2 guide"):
        P.plot_bezier_pairs(pairs, 3)
    with pytest.raises(ValueError, match="shape"):
        P.plot_bezier_pairs((pairs.x0, pairs.x1[:5]))


@pytest.mark.parametrize("t", [0.0, 0.25, 0.9, 1.0])
def test_target_arrows_are_one_euler_step_of_the_target(t):
    pairs = _pairs(n=12)
    ax = P.plot_targets(pairs, 2, t=t, target="both", max_pairs=None)
    quivers = [c for c in ax.collections if isinstance(c, Quiver)]
    assert len(quivers) == 2
    x0, x1, g = pairs.x0.double(), pairs.x1.double(), pairs.guides[0].double()
    sample = BezierPath(2).sample(x0, x1, torch.full((12,), t, dtype=torch.float64), (g,))
    for q, kind in zip(quivers, ("tangent", "endpoint"), strict=True):
        want = regression_target(sample, kind).numpy() * (1 - t)
        np.testing.assert_allclose(np.column_stack([q.U, q.V]), want, atol=1e-9)
        np.testing.assert_allclose(q.X, sample.x_t[:, 0].numpy(), atol=1e-12)
    end = quivers[1]
    if t < 1:  # every endpoint arrow ends on its X1
        np.testing.assert_allclose(
            np.column_stack([end.X + end.U, end.Y + end.V]), x1.numpy(), atol=1e-9
        )
    labels = ax.get_legend_handles_labels()[1]
    assert "$X_0$" in labels  # drawn, but kept out of the (small) legend
    assert "$X_0$" not in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="target"):
        P.plot_targets(pairs, target="velocity")


def _student_and_states(k: int = 4, n: int = 30):
    teacher = new_mlp(2, hidden=16, depth=2, seed=1)
    student = branched_from_teacher(teacher, k)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, generator=g)
    states = torch.randn(k, n, 2, generator=g)
    return student, x0, states


def test_branch_errors_are_per_branch_mean_squared_errors():
    student, x0, states = _student_and_states()
    with torch.no_grad():
        out = student.branches(x0, torch.zeros(len(x0)))
    want = ((out - states.permute(1, 0, 2)) ** 2).sum(-1).mean(0).double().numpy()
    np.testing.assert_allclose(P.branch_errors(student, x0, states), want, rtol=1e-6)
    with_z0 = torch.cat([x0[None], states])  # K + 1 states starting at Z_0
    np.testing.assert_allclose(P.branch_errors(student, x0, with_z0), want, rtol=1e-6)
    np.testing.assert_allclose(P.branch_errors(student, x0, list(states)), want, rtol=1e-6)
    with pytest.raises(ValueError, match="needs 4 teacher states"):
        P.branch_errors(student, x0, states[:2])


def test_plot_branches_draws_branches_teacher_and_errors():
    student, x0, states = _student_and_states()
    ax = P.plot_branches(student, x0, states, max_points=10)
    labels = [c.get_label() for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(lab.startswith("branch ") for lab in labels) == 4
    teacher_lines = _lines(ax, "teacher").get_segments()
    assert len(teacher_lines) == 10 and len(teacher_lines[0]) == 5  # Z_0 and 4 states
    error_colls = [c for c in ax.collections if isinstance(c, LineCollection)][1:]
    assert len(error_colls) == 4
    # the teacher alone, and the branches alone
    P.plot_branches(None, x0, states, max_points=5)
    ax = P.plot_branches(student, x0, max_points=5)
    assert not any(c.get_label() == "teacher" for c in ax.collections)
    with pytest.raises(ValueError, match="give a model"):
        P.plot_branches(None, x0)
