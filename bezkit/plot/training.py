"""Training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes

from bezkit.plot.style import new_axes

__all__ = ["plot_loss"]


def plot_loss(
    losses: Sequence[float] | Mapping[str, Sequence[float]],
    *,
    ax: Axes | None = None,
    smooth: int = 50,
    logy: bool = True,
    title: str | None = None,
) -> Axes:
    """Training loss per step (faint) and its moving average over ``smooth`` steps, one colour per
    run (``losses`` is one list or ``{label: list}``)."""
    ax = new_axes(ax, (5.0, 3.0))
    runs = losses.items() if isinstance(losses, Mapping) else [("loss", losses)]
    for i, (name, vals) in enumerate(runs):
        y = np.asarray(list(vals), dtype=np.float64)
        if y.size == 0:
            continue
        x = np.arange(1, y.size + 1)
        ax.plot(x, y, color=f"C{i}", alpha=0.25, lw=0.7)
        w = max(1, min(int(smooth), y.size))
        avg = np.convolve(y, np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1 :], avg, color=f"C{i}", lw=1.5, label=f"{name} (mean of {w})")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    if ax.lines:
        ax.legend()
    if title:
        ax.set_title(title)
    return ax
