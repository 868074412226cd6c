"""The experiment's chain-trajectory figure: zoomed to the data, one colour per source mode, a
legend that names them; the figures are written as palette PNGs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from PIL import Image

from bezkit.experiments.figures import data_window, plot_chain_trajectories, write_figures
from bezkit.plot.style import MODE_COLORS
from bezkit.plot.trajectories import source_modes


def test_data_window_is_the_central_quantiles_padded_and_square():
    g = np.random.default_rng(0)
    pts = np.column_stack([g.uniform(2.0, 4.0, 2001), g.uniform(-1.0, 0.0, 2001)])
    pts[0] = [500.0, -500.0]  # one far-out point does not set the window
    (x0, x1), (y0, y1) = data_window(pts, coverage=0.99, pad=0.1)
    lo, hi = np.quantile(pts, [0.005, 0.995], axis=0)
    half = (hi - lo).max() * 0.6
    assert (x0, x1) == pytest.approx(((lo[0] + hi[0]) / 2 - half, (lo[0] + hi[0]) / 2 + half))
    assert (y0, y1) == pytest.approx(((lo[1] + hi[1]) / 2 - half, (lo[1] + hi[1]) / 2 + half))
    assert x1 - x0 == pytest.approx(y1 - y0)  # square: equal scales on a square panel
    assert x1 < 10.0 and y0 > -10.0
    with pytest.raises(ValueError, match="finite point"):
        data_window(np.full((3, 2), np.nan))


def _paths() -> dict[tuple[str, int], torch.Tensor]:
    """Two chains x two rounds from 8 source modes around (10, 10) to points near it."""
    g = torch.Generator().manual_seed(0)
    angle = torch.arange(8).repeat(5) * (2 * torch.pi / 8)
    x0 = (
        torch.stack([angle.cos(), angle.sin()], 1) * 2 + 10 + 0.05 * torch.randn(40, 2, generator=g)
    )
    x1 = 10 + 0.5 * torch.randn(40, 2, generator=g)
    t = torch.linspace(0, 1, 11)[:, None, None]
    return {(kind, k): (1 - t) * x0 + t * x1 for kind in ("reflow", "bezier") for k in (1, 2)}


def test_chain_trajectories_are_zoomed_and_coloured_by_source_mode():
    paths = _paths()
    fig = plot_chain_trajectories(paths, max_paths=None, title="demo")
    axes = fig.axes
    assert len(axes) == 4
    window = data_window(torch.cat([p.reshape(-1, 2) for p in paths.values()]).numpy())
    for ax in axes:
        assert ax.get_xlim() == pytest.approx(window[0])
        assert ax.get_ylim() == pytest.approx(window[1])
    # every path in the colour of its start's mode
    x0 = paths[("reflow", 1)][0].numpy()
    want = [MODE_COLORS[m] for m in source_modes(x0)]
    lines = axes[0].collections[0]
    got = [to_hex(c, keep_alpha=False) for c in lines.get_colors()]
    assert got == want and len(set(got)) == 8
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:8] == [f"from mode {m}" for m in range(1, 9)]
    assert [to_hex(h.get_color()) for h in legend.legend_handles[:8]] == list(MODE_COLORS)
    assert "source mode" in legend.get_title().get_text()
    assert axes[0].get_ylabel() == "reflow chain" and axes[0].get_title() == "round k = 1"
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        plot_chain_trajectories({})


def test_written_figures_are_palette_pngs(tmp_path):
    exp = {"source": "a", "target": "b", "noise_floor": [0.1], "runs": []}
    results = {"schema_version": 2, "experiments": [exp]}
    names = write_figures(results, [_paths()], tmp_path)
    assert names == ["a-to-b-chain-trajectories.png"]
    with Image.open(tmp_path / names[0]) as image:
        assert image.mode == "P" and image.size[0] > 600
