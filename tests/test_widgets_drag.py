"""Dragging control points (bezkit.widgets.drag), headless: write ``points`` as a mouse drag does
and check that the sliders, the figure's traces and the readout follow, and the other way round."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("anywidget")
pytest.importorskip("plotly")

from bezkit.paths import BezierPath
from bezkit.widgets import bezier_widget
from bezkit.widgets.drag import DragPoints, PlotBox, pinned_layout


def _xy(trace) -> np.ndarray:
    return np.column_stack([np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)])


def test_plot_box_maps_the_window_corners_to_the_plot_area_corners():
    box = PlotBox.square(-4.5, 4.5, size=400, left=40, right=10, top=30, bottom=70)
    assert (box.total_width, box.total_height) == (450, 500)
    assert box.to_pixel(-4.5, 4.5) == (40.0, 30.0)  # top left
    assert box.to_pixel(4.5, -4.5) == (440.0, 430.0)  # bottom right
    assert box.to_pixel(0.0, 0.0) == (240.0, 230.0)
    layout = pinned_layout(box)
    m = layout["margin"]
    assert layout["width"] - m["l"] - m["r"] == box.width == 400
    assert layout["height"] - m["t"] - m["b"] == box.height == 400
    assert m["autoexpand"] is False and layout["dragmode"] is False
    assert layout["xaxis"]["range"] == [-4.5, 4.5] and layout["xaxis"]["fixedrange"]


def test_plot_box_rejects_an_empty_window():
    with pytest.raises(ValueError, match="hi > lo"):
        PlotBox.square(1.0, 1.0)


def test_drag_points_needs_a_colour_and_label_per_point():
    box = PlotBox.square(-1, 1)
    with pytest.raises(ValueError, match="3 points need 3 colors"):
        DragPoints([[0, 0], [1, 1], [0, 1]], box, colors=["red"])
    d = DragPoints([[0, 0], [1, 1]], box)
    assert d.points == [[0.0, 0.0], [1.0, 1.0]] and d.locked == [False, False]
    assert d.box["width"] == box.width


def test_dragging_a_guide_moves_its_sliders_the_curve_and_the_readout():
    b = bezier_widget(order=2, t=0.5)
    drag = b.controls["points"]
    assert isinstance(drag, DragPoints)
    np.testing.assert_allclose(drag.points, [[-2.0, -1.0], [-1.0, 2.5], [2.0, 1.0]])
    before = _xy(b.trace("curve")).copy()
    drag.points = [[-2.0, -1.0], [0.5, 3.0], [2.0, 1.0]]  # what a mouse drag of G1 writes
    assert (b.controls["P1_x"].value, b.controls["P1_y"].value) == (0.5, 3.0)
    cp = np.array([[-2.0, -1.0], [0.5, 3.0], [2.0, 1.0]])
    np.testing.assert_allclose(_xy(b.trace("control polygon")), cp)
    after = _xy(b.trace("curve"))
    assert not np.allclose(before, after)
    path = BezierPath(2)
    import torch

    x0, g, x1 = (torch.tensor(p, dtype=torch.float64)[None] for p in cp)
    mid = path.point(x0, x1, torch.tensor([0.5], dtype=torch.float64), (g,))[0].numpy()
    np.testing.assert_allclose(_xy(b.trace("B(t)"))[0], mid)
    assert f"({mid[0]:.3f}, {mid[1]:.3f})" in b.readout.value


def test_moving_a_slider_moves_the_handle():
    b = bezier_widget(order=3)
    b.controls["P2_y"].value = 1.5
    assert b.controls["points"].points[2] == [1.0, 1.5]


def test_a_drag_outside_the_slider_range_is_clamped_to_it():
    b = bezier_widget(order=2, limit=3.0)
    b.controls["points"].points = [[-9.0, 0.0], [0.0, 0.0], [2.0, 9.0]]
    assert b.controls["P0_x"].value == -3.0 and b.controls["P2_y"].value == 3.0
    assert b.controls["points"].points[0] == [-3.0, 0.0]  # the handle snaps back into range


def test_on_the_chord_guides_are_locked_and_follow_a_dragged_endpoint():
    b = bezier_widget(order=3)
    b.controls["chord"].value = True
    drag = b.controls["points"]
    assert drag.locked == [False, True, True, False]
    drag.points = [[-3.0, 0.0], [4.0, 4.0], [4.0, 4.0], [3.0, 0.0]]  # guides cannot be dragged
    np.testing.assert_allclose(drag.points, [[-3.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    assert b.state["max_chord_gap"] < 1e-12
    b.controls["chord"].value = False
    assert drag.locked == [False] * 4


def test_a_wrong_number_of_points_is_refused():
    b = bezier_widget(order=2)
    with pytest.raises(ValueError, match="3 \\(x, y\\) pairs"):
        b.controls["points"].points = [[0.0, 0.0], [1.0, 1.0]]
