"""What lesson 05's two results widgets share: the figure of means with their intervals against the
round k (left) beside paired differences (right), and the plotly updates that fill it.

Every point is a mean over seeds with its 95% interval ``[low, high]``, drawn as an asymmetric
error bar ``mean - low`` below and ``high - mean`` above (:func:`error_bars`); the intervals come
from :mod:`bezkit.experiments.statistics` through :mod:`bezkit.experiments.results`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from bezkit.experiments.results import CHAIN_FIELDS, Experiment
from bezkit.experiments.statistics import Interval
from bezkit.widgets.base import noise_floor_trace, panel_figure
from bezkit.widgets.canvas import Canvas

__all__ = [
    "W2_FIELDS",
    "chains_control",
    "difference_bars",
    "error_bars",
    "field_control",
    "interval_figure",
    "interval_series",
    "mean_noise_floor",
    "noise_floor_line",
    "pair_control",
]

#: The chain fields that are a W2, the ones drawn with the noise floor.
W2_FIELDS = ("w2_many_steps", "w2_one_step")


def error_bars(intervals: Sequence[Interval]) -> dict[str, Any]:
    """A plotly ``error_y`` / ``error_x`` of asymmetric bars: ``high - mean`` above the mean and
    ``mean - low`` below it, one per interval."""
    return dict(
        type="data",
        symmetric=False,
        array=[iv.high - iv.mean for iv in intervals],
        arrayminus=[iv.mean - iv.low for iv in intervals],
    )


def interval_series(by_k: Mapping[int, Interval]) -> dict[str, Any]:
    """The trace properties of one series of intervals against the round: ``x`` the rounds in
    order, ``y`` their means, ``error_y`` their bars (all empty for an empty series)."""
    ks = sorted(by_k)
    return dict(x=ks, y=[by_k[k].mean for k in ks], error_y=error_bars([by_k[k] for k in ks]))


def difference_bars(differences: Mapping[str, Interval]) -> dict[str, dict[str, Any]]:
    """The changes of the right panel's ``differences`` (one horizontal bar per name, at its mean
    with its interval) and ``zero`` (the vertical line at 0 across them) traces."""
    names = list(differences)
    return {
        "differences": dict(
            x=[differences[n].mean for n in names],
            y=names,
            error_x=error_bars([differences[n] for n in names]),
        ),
        "zero": dict(x=[0.0, 0.0], y=[names[0], names[-1]]) if names else dict(x=[], y=[]),
    }


def mean_noise_floor(exp: Experiment) -> float:
    """The experiment's noise floor: the mean of its evaluation draws (``exp["noise_floor"]``)."""
    draws = exp["noise_floor"]
    return float(sum(draws) / len(draws))


def noise_floor_line(span: Sequence[int], floor: float | None) -> dict[str, Any]:
    """The ``noise floor`` trace's changes: a flat line at ``floor`` from the first to the last
    round of ``span``, or nothing when ``floor`` is ``None``."""
    if floor is None:
        return dict(x=[], y=[])
    return dict(x=[span[0], span[-1]], y=[floor, floor])


def interval_figure(
    left: Sequence[go.Scatter],
    right: Sequence[go.Scatter],
    *,
    titles: Sequence[str],
    height: int,
    margin_left: int,
) -> Canvas:
    """The two panels: ``left`` (series against the round k) with the ``noise floor``, and
    ``right`` (paired differences) with the ``differences`` bars and the ``zero`` line; the
    traces are filled by the widget's first draw."""
    fig = panel_figure(
        titles,
        [0.55, 0.45],
        width=1000,
        height=height,
        spacing=0.2,
        margin_left=margin_left,
        legend_y=-0.2,
        equal_axes=False,
    )
    for trace in left:
        fig.add_trace(trace, row=1, col=1)
    fig.add_trace(noise_floor_trace(), row=1, col=1)
    for trace in right:
        fig.add_trace(trace, row=1, col=2)
    fig.add_scatter(
        name="differences", mode="markers", marker=dict(size=10), showlegend=False, row=1, col=2
    )
    fig.add_scatter(
        name="zero", mode="lines", line=dict(color="#888"), showlegend=False, row=1, col=2
    )
    fig.update_xaxes(title_text="round k", dtick=1, row=1, col=1)
    return Canvas(fig)


def pair_control(labels: Sequence[str]) -> widgets.Dropdown:
    """The ``pair`` control: which experiment (source -> target) of the results to show."""
    return widgets.Dropdown(options=list(labels), value=labels[0], description="pair")


def chains_control(kinds: Sequence[str]) -> widgets.SelectMultiple:
    """The ``chains`` control: which of the reflow chains ``kinds`` to draw (all at first)."""
    return widgets.SelectMultiple(
        options=list(kinds), value=tuple(kinds), description="chains", rows=max(2, len(kinds))
    )


def field_control(field: str, description: str) -> widgets.Dropdown:
    """A Dropdown over :data:`bezkit.experiments.results.CHAIN_FIELDS` (``field`` first picked;
    a ``ValueError`` names the known fields)."""
    if field not in CHAIN_FIELDS:
        raise ValueError(f"unknown chain field {field!r}; known: {', '.join(CHAIN_FIELDS)}")
    return widgets.Dropdown(
        options=[(f.replace("_", " "), f) for f in CHAIN_FIELDS],
        value=field,
        description=description,
    )
