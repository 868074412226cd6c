"""The look shared by every static figure: role colours, sizes and fonts, legends, axis limits.

Colours say what a point is, in every lesson and in the experiment report: source samples blue,
targets orange, generated samples green, crossing segments red (:data:`COLORS`, also used by
:mod:`bezkit.widgets`). No role is yellow: yellow on white cannot be read.

:func:`use_style` sets the sizes and fonts once (a notebook's setup cell calls it; a script that
saves figures may use :func:`style_context` instead): 110 dpi on screen, 150 dpi in saved files,
legend and tick text of 9 points, so a legend reads at about 14 pixels, not 6.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "COLORS",
    "MODE_COLORS",
    "STYLE",
    "finish_axes",
    "new_axes",
    "place_legend",
    "robust_limits",
    "shared_legend",
    "style_context",
    "use_style",
]

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
    "chord": "#8c564b",  # the straight line X0 -> X1
    "state": "#e377c2",  # a teacher's state Z_s (where a guide comes from)
    "floor": "#555555",  # W2 noise floor
}

#: Colours of the source's modes (trajectories coloured by where they start): tab10 without its
#: grey and its olive-yellow, dark enough to read on white.
MODE_COLORS: tuple[str, ...] = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
)

#: matplotlib settings of every lesson figure (:func:`use_style`, :func:`style_context`).
STYLE: dict[Any, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.framealpha": 0.85,
    "axes.prop_cycle": cycler(color=list(MODE_COLORS)),
    "axes.grid": False,
    "lines.linewidth": 1.6,
}


def use_style() -> None:
    """Apply :data:`STYLE` to matplotlib for the rest of the session (a notebook's setup cell)."""
    plt.rcParams.update(STYLE)


@contextmanager
def style_context() -> Iterator[None]:
    """:data:`STYLE` inside a ``with`` block only (scripts that save figures)."""
    with plt.rc_context(STYLE):
        yield


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


def place_legend(ax: Axes, *, where: str = "below", **kwargs: Any) -> None:
    """A legend that does not cover the data: ``below`` the axes (centred, up to 3 columns) or to
    the ``right`` of them; ``inside`` lets matplotlib pick the emptiest corner. Nothing is drawn
    when no artist has a label. ``kwargs`` go to :meth:`~matplotlib.axes.Axes.legend`."""
    handles, labels = kwargs.pop("handles", None), kwargs.pop("labels", None)
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if where == "below":
        # as many columns as the axes' width holds (a narrow panel of a row of panels gets one,
        # so its legend does not run under its neighbour's)
        inches = ax.get_window_extent().width / ax.figure.dpi
        ncol = 3 if inches >= 4.0 else 2 if inches >= 2.8 else 1
        opts = dict(
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            borderaxespad=2.2,
            ncol=min(ncol, len(handles)),
            frameon=False,
        )
    elif where == "right":
        opts = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif where == "inside":
        opts = dict(loc="best")
    else:
        raise ValueError(f"where must be 'below', 'right' or 'inside', got {where!r}")
    ax.legend(handles, labels, **{**opts, **kwargs})


def shared_legend(fig: Figure, *, ncol: int | None = None, **kwargs: Any) -> None:
    """One legend for a row of panels, below them all: the entries of every axes of ``fig`` (each
    label once, in order of appearance) replace the panels' own legends, which in a row of panels
    run into each other. The legend sits just under the lowest panel's tick labels (and x label).
    ``kwargs`` go to :meth:`~matplotlib.figure.Figure.legend`."""
    handles: list[Any] = []
    labels: list[str] = []
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    if not handles:
        return
    for ax in fig.axes:
        ax.apply_aspect()  # an equal-aspect panel shrinks inside its slot: measure where it is
    bottom = min(ax.get_position().y0 for ax in fig.axes)
    below = 0.32 + (0.25 if any(ax.get_xlabel() for ax in fig.axes) else 0.0)  # ticks, label
    top = bottom - below / fig.get_figheight()
    opts = dict(loc="upper center", bbox_to_anchor=(0.5, top), frameon=False)
    fig.legend(handles, labels, ncol=ncol or min(len(handles), 4), **{**opts, **kwargs})


def robust_limits(
    values: Iterable[float], *, whisker: float = 3.0, pad: float = 0.08, floor_zero: bool = True
) -> tuple[float, float]:
    """Axis limits that show the bulk of ``values``, not one outlier.

    With the quartiles ``q1, q3`` and ``iqr = q3 - q1``, the values inside
    ``[q1 - whisker * iqr, q3 + whisker * iqr]`` set the limits (Tukey's fences, wider than the
    usual 1.5 so that only far outliers fall outside), plus ``pad`` of their range on each side;
    with ``floor_zero`` a series of non-negative values starts at 0. NaN and inf are ignored;
    ``ValueError`` if no finite value is left.
    """
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("robust_limits needs at least one finite value")
    q1, q3 = np.quantile(v, [0.25, 0.75])
    iqr = max(float(q3 - q1), 1e-9 * max(1.0, abs(float(q3))))
    inside = v[(v >= q1 - whisker * iqr) & (v <= q3 + whisker * iqr)]
    lo, hi = float(inside.min()), float(inside.max())
    width = max(hi - lo, iqr, 1e-9 * max(1.0, abs(hi)))
    lo, hi = lo - pad * width, hi + pad * width
    if floor_zero and float(v.min()) >= 0.0:
        lo = 0.0
    return lo, hi
