"""The chains widget of lesson 05: pick chains, a metric and a round k of the experiment's chains.

Every number is read from a ``results.json`` (schema 2) through :mod:`bezkit.experiments.results`:
means over seeds with their 95% t-intervals, and paired differences (same seeds, same evaluation
draws) of two rounds,

    d_s = mean_j (m_s,j(chain, k) - m_s,j(other, k')),    interval = mean(d) -/+ t sd(d) / sqrt(n),

with ``other, k'`` either the reflow chain at the same round (does the chain beat plain reflow?)
or the same chain at round 1 (has its error grown since round 1?).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from bezkit.experiments.results import (
    CHAIN_FIELDS,
    Experiment,
    chain_by_k,
    chain_values,
    experiment_label,
    experiments,
)
from bezkit.experiments.statistics import Interval, better, paired_difference
from bezkit.widgets.base import WidgetBundle, WidgetView
from bezkit.widgets.canvas import Canvas
from bezkit.widgets.intervals import (
    W2_FIELDS,
    chains_control,
    difference_bars,
    field_control,
    interval_figure,
    interval_series,
    mean_noise_floor,
    noise_floor_line,
    pair_control,
)

__all__ = ["CHAIN_COMPARISONS", "chain_comparison", "chains_widget"]

#: What a chain round is compared with: label -> key.
CHAIN_COMPARISONS: tuple[tuple[str, str], ...] = (
    ("the reflow chain, same round", "reflow"),
    ("the same chain at round 1", "round1"),
)


def chain_comparison(
    exp: Mapping[str, Any], field: str, k: int, *, against: str = "reflow"
) -> dict[str, Interval]:
    """``{chain: Interval}`` of the paired difference at round ``k`` of ``field`` (one of
    :data:`bezkit.experiments.results.CHAIN_FIELDS`): each chain minus the reflow chain at round
    ``k`` (``against="reflow"``; the reflow chain itself is left out) or minus its own round 1
    (``against="round1"``: how much the chain's error grew). Chains without round ``k`` are left
    out."""
    if against not in dict((v, v) for _, v in CHAIN_COMPARISONS):
        raise ValueError(f"unknown comparison {against!r}; use 'reflow' or 'round1'")
    if field not in CHAIN_FIELDS:
        raise ValueError(f"unknown chain field {field!r}; known: {', '.join(CHAIN_FIELDS)}")
    kinds = list(dict.fromkeys(c["chain"] for c in exp.get("chains", [])))
    out: dict[str, Interval] = {}
    for kind in kinds:
        rounds = {c["k"] for c in exp["chains"] if c["chain"] == kind}
        if k not in rounds or (against == "reflow" and (kind == "reflow" or "reflow" not in kinds)):
            continue
        base_kind, base_k = ("reflow", k) if against == "reflow" else (kind, min(rounds))
        out[kind] = paired_difference(
            chain_values(exp, kind, k, field), chain_values(exp, base_kind, base_k, field)
        )
    return out


def _chain_experiments(results: Any) -> list[Experiment]:
    exps = [e for e in experiments(results) if e.get("chains")]
    if not exps:
        raise ValueError("the results hold no chains (run `bezkit experiment` with --rounds >= 2)")
    return exps


def _palette(kinds: Sequence[str]) -> dict[str, str]:
    return {kind: f"hsl({(i * 97 + 210) % 360}, 65%, 42%)" for i, kind in enumerate(kinds)}


def _figure(kinds: Sequence[str], palette: Mapping[str, str]) -> Canvas:
    """Left: one series per chain and the dotted ``round k`` marker; right: the differences."""
    left = [
        go.Scatter(name=kind, mode="lines+markers", line=dict(color=palette[kind]))
        for kind in kinds
    ]
    left.append(go.Scatter(name="round k", mode="lines", line=dict(color="#555", dash="dot")))
    return interval_figure(
        left,
        [],
        titles=["mean and 95% interval over seeds", "paired difference at round k"],
        height=460,
        margin_left=60,
    )


class _ChainsView(WidgetView):
    """The chains widget's controls (``pair``, ``chains``, ``field``, ``against``, ``k``) and
    drawing."""

    def __init__(self, exps: list[Experiment], field: str, k: int | None, against: str) -> None:
        super().__init__()
        self.exps = exps
        self.labels = [experiment_label(e) for e in exps]
        self.kinds = list(dict.fromkeys(c["chain"] for e in exps for c in e["chains"]))
        self.rounds = sorted({c["k"] for e in exps for c in e["chains"]})
        self.palette = _palette(self.kinds)
        self.figure = _figure(self.kinds, self.palette)
        first, last = self.rounds[0], self.rounds[-1]
        self.controls = {
            "pair": pair_control(self.labels),
            "chains": chains_control(self.kinds),
            "field": field_control(field, "metric"),
            "against": widgets.Dropdown(
                options=CHAIN_COMPARISONS, value=against, description="against"
            ),
            "k": widgets.IntSlider(
                value=last if k is None else min(max(int(k), first), last),
                min=first,
                max=last,
                description="round k",
            ),
        }
        for ctrl in self.controls.values():
            ctrl.observe(self.on_change, names="value")

    def refresh(self) -> None:
        c = self.controls
        exp = self.exps[self.labels.index(c["pair"].value)]
        fld, kk, base = c["field"].value, int(c["k"].value), c["against"].value
        shown = [kind for kind in self.kinds if kind in c["chains"].value]
        series = {kind: v for kind, v in chain_by_k(exp, fld).items() if kind in shown}
        diffs = {
            kind: iv
            for kind, iv in chain_comparison(exp, fld, kk, against=base).items()
            if kind in shown
        }
        self._draw(exp, series, diffs, kk)
        what = "minus the reflow chain" if base == "reflow" else "minus its round 1"
        self.figure.update_layout(
            {
                "yaxis.title.text": fld.replace("_", " "),
                "xaxis2.title.text": f"round {kk} {what} (negative = lower)",
            }
        )
        self.state.update(experiment=exp, series=series, differences=diffs, k=kk, field=fld)
        self.readout.value = self._text(series, diffs, kk)

    def _draw(
        self,
        exp: Experiment,
        series: Mapping[str, Mapping[int, Interval]],
        diffs: Mapping[str, Interval],
        kk: int,
    ) -> None:
        values = [iv for by_k in series.values() for iv in by_k.values()]
        low = min((iv.low for iv in values), default=0.0)
        high = max((iv.high for iv in values), default=1.0)
        floor = mean_noise_floor(exp) if self.controls["field"].value in W2_FIELDS else None
        changes = {kind: interval_series(series.get(kind, {})) for kind in self.kinds}
        changes["round k"] = dict(x=[kk, kk], y=[low, high])
        changes["noise floor"] = noise_floor_line(self.rounds, floor)
        changes.update(difference_bars(diffs))
        changes["differences"]["marker"] = dict(color=[self.palette[n] for n in diffs])
        self.update(changes)

    def _text(
        self,
        series: Mapping[str, Mapping[int, Interval]],
        diffs: Mapping[str, Interval],
        kk: int,
    ) -> str:
        c = self.controls
        fld, base = c["field"].value, c["against"].value
        parts = [f"<b>{html.escape(c['pair'].value)}</b>, {html.escape(fld)}, round {kk}"]
        for kind, by_k in series.items():
            if kk in by_k:
                parts.append(f"{html.escape(kind)}: {by_k[kk].format()}")
        for kind, iv in diffs.items():
            other = "reflow" if base == "reflow" else f"{kind} at round 1"
            parts.append(
                f"{html.escape(kind)} - {html.escape(other)}: {iv.format()} "
                f"(lower? {html.escape(better(iv))})"
            )
        return "<br>".join(parts)


def chains_widget(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    field: str = "w2_many_steps",
    k: int | None = None,
    against: str = "reflow",
) -> WidgetBundle:
    """Pick the chains, the metric and the round k to compare.

    Left: ``field`` against the round for the selected chains (mean and 95% interval over seeds),
    a dotted line at round k, and the noise floor for the W2 fields. Right and in the readout: at
    round k, each selected chain's paired difference (:func:`chain_comparison`) against the reflow
    chain or against its own round 1, with its answer (yes / no / not distinguishable).

    Controls: ``pair`` (Dropdown), ``chains`` (SelectMultiple), ``field`` (Dropdown),
    ``against`` (Dropdown: ``"reflow"`` or ``"round1"``), ``k`` (IntSlider over the chains'
    rounds). Traces: ``<chain>``, ``round k``, ``noise floor``, ``differences``, ``zero``.
    ``state`` holds ``series`` (``{chain: {k: Interval}}``), ``differences``
    (``{chain: Interval}``) and ``k``.
    """
    exps = _chain_experiments(results)
    chain_comparison(exps[0], field, 1, against=against)  # validates ``field`` and ``against``
    view = _ChainsView(exps, field, k, against)
    view.refresh()
    c = view.controls
    left = widgets.VBox([c["pair"], c["field"], c["against"], c["k"]])
    return view.bundle(widgets.VBox([widgets.HBox([left, c["chains"]]), view.readout, view.figure]))
