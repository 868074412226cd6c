"""The look shared by every static figure: role colours, new axes, the finishing touches.

Colours say what a point is, in every lesson and in the experiment report: source samples blue,
targets orange, generated samples green, crossing segments red (:data:`COLORS`, also used by
:mod:`bezkit.widgets`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

__all__ = ["COLORS", "finish_axes", "new_axes"]

#: One colour per role, used by every figure (static and interactive).
#: One colour per role, used by every figure (static and interactive).
COLORS: dict[str, str] = {
    "source": "#1f77b4",  # X0 ~ pi0
    "target": "#ff7f0e",  # X1 ~ pi1 (real data)
    "generated": "#2ca02c",  # Z1, the flow's samples
    "trajectory": "#7f7f7f",
    "segment": "#9e9e9e",  # straight segments X0 -> X1 that cross nothing
    "crossing": "#d62728",  # segments that cross another one
    "curve": "#9467bd",  # a Bezier curve B(t)
    "control": "#555555",  # its control polygon
    "tangent": "#17becf",  # B'(t)
    "endpoint": "#d62728",  # (X1 - B(t)) / (1 - t)
    "chord": "#bcbd22",  # the straight line X0 -> X1
    "floor": "#555555",  # W2 noise floor
}


def new_axes(ax: Axes | None, figsize: tuple[float, float] = (4.5, 4.5)) -> Axes:
    """``ax`` itself, or the axes of a new figure of ``figsize`` inches when ``ax`` is None."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def finish_axes(ax: Axes, title: str | None, lim: float | None) -> None:
    """Equal aspect for a 2D point figure, the square window ``[-lim, lim]^2`` if given, a title."""
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
