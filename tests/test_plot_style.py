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
