"""bezkit.plot.style and the legibility options of the figures, headlessly (Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection

from bezkit import plot as P


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _luminance_and_yellowness(hex_color: str) -> tuple[float, bool]:
    r, g, b = matplotlib.colors.to_rgb(hex_color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b, (r > 0.6 and g > 0.6 and b < 0.35)


def test_no_role_or_mode_colour_is_yellow_or_too_light_on_white():
    for c in [*P.COLORS.values(), *P.MODE_COLORS]:
        lum, yellow = _luminance_and_yellowness(c)
        assert not yellow, c
        assert lum < 0.7, c  # readable on a white background


def test_use_style_sets_a_legible_dpi_and_font_sizes():
    with P.style_context():
        assert plt.rcParams["figure.dpi"] >= 100
        assert plt.rcParams["legend.fontsize"] >= 9
        _, ax = plt.subplots()
        assert ax.figure.dpi >= 100
    # style_context leaves the global settings as they were
    assert plt.rcParams["figure.dpi"] == matplotlib.rcParamsDefault["figure.dpi"]


def test_robust_limits_ignore_one_outlier_but_keep_a_spread_series():
    w2 = [0.21, 0.23, 0.25, 0.24, 0.22, 0.26, 3.5]
    lo, hi = P.robust_limits(w2)
    assert lo == 0.0 and 0.26 < hi < 0.4  # the outlier 3.5 does not set the axis
    spread = [0.1, 0.5, 1.0, 1.5, 2.0]
    lo, hi = P.robust_limits(spread)
    assert lo == 0.0 and hi >= 2.0  # nothing is an outlier here
    lo, hi = P.robust_limits([-1.0, 1.0, float("nan")])
    assert lo < -1.0 and hi > 1.0
    with pytest.raises(ValueError, match="finite"):
        P.robust_limits([float("nan")])


def test_source_modes_split_the_eight_gaussians_by_their_centres():
    centres = np.array([[np.cos(a), np.sin(a)] for a in np.arange(8) * np.pi / 4]) * 2
    pts = np.repeat(centres, 20, axis=0) + np.random.default_rng(0).normal(0, 0.1, (160, 2))
    labels = P.source_modes(pts)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(8), 20))


def test_trajectories_are_coloured_by_source_mode_with_the_legend_off_the_data():
    x0 = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [2.1, 0.1]])
    traj = torch.stack([x0, 0.5 * x0, 0.1 * x0])  # (3, 4, 2)
    ax = P.plot_trajectories(traj, max_paths=None, n_modes=4)
    lines = next(c for c in ax.collections if isinstance(c, LineCollection))
    colors = [matplotlib.colors.to_hex(c) for c in lines.get_colors()]
    assert colors[0] == colors[3] != colors[1]  # same mode, same colour
    assert len(set(colors[:3])) == 3
    legend = ax.get_legend()
    assert legend is not None
    bbox = legend.get_window_extent(ax.figure.canvas.get_renderer())
    assert bbox.y1 <= ax.get_window_extent().y0  # below the axes, not over the data
    grey = P.plot_trajectories(traj, color_by=None)
    lines = next(c for c in grey.collections if isinstance(c, LineCollection))
    assert matplotlib.colors.to_hex(lines.get_colors()[0]) == P.COLORS["trajectory"]
    with pytest.raises(ValueError, match="one label per path"):
        P.plot_trajectories(traj, modes=[0, 1])
    with pytest.raises(ValueError, match="color_by"):
        P.plot_trajectories(traj, color_by="speed")


def test_place_legend_refuses_an_unknown_place_and_skips_an_empty_legend():
    _, ax = plt.subplots()
    P.place_legend(ax)
    assert ax.get_legend() is None
    ax.plot([0, 1], [0, 1], label="a")
    with pytest.raises(ValueError, match="below"):
        P.place_legend(ax, where="top")
    P.place_legend(ax, where="right")
    assert ax.get_legend() is not None


def test_shared_legend_replaces_the_panels_legends_by_one_below_them():
    """Issue 20: a row of panels, each with a legend below it, had legends running into each other."""
    from bezkit.plot import plot_bezier, shared_legend

    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
    for ax, t in zip(axes, (0.1, 0.5, 0.9), strict=True):
        plot_bezier([[-2.0, -1.0], [-1.0, 2.5], [2.0, 1.0]], t=t, ax=ax)
    assert all(ax.get_legend() is not None for ax in axes)
    shared_legend(fig)
    assert all(ax.get_legend() is None for ax in axes)
    (legend,) = fig.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert len(labels) == len(set(labels)) == 5  # polygon, curve, point, two arrows: each once
    plt.close(fig)


def test_w2_vs_steps_without_lines_marks_only_what_was_measured():
    from bezkit.plot import plot_w2_vs_steps

    w2 = {f"model {i}": {1: 1.0 + i, 4: 0.5 + i, 16: 0.3 + i} for i in range(7)}
    ax = plot_w2_vs_steps(w2, noise_floor=0.2, connect=False, legend="right")
    series = [line for line in ax.get_lines() if line.get_label().startswith("model")]
    assert len(series) == 7
    assert all(line.get_linestyle() == "None" for line in series)  # no line between 4 and 16
    assert len({line.get_marker() for line in series}) == 7  # a shape per series
    xs = np.array([line.get_xdata() for line in series])
    assert np.allclose(np.median(xs, axis=0), [1, 4, 16])  # dodged around the measured steps
    assert np.all(np.abs(np.log2(xs / [1, 4, 16])) < 0.25)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "16"]
    assert ax.get_legend() is not None
    plt.close(ax.figure)


def test_lessons_draw_figures_at_100_dpi_or_more():
    from bezkit.course import FIGURE_STYLE

    assert FIGURE_STYLE["figure.dpi"] >= 100
