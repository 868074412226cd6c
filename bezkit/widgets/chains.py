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
from plotly.subplots import make_subplots

from bezkit.experiments.results import (
    CHAIN_FIELDS,
    Experiment,
    chain_by_k,
    chain_values,
    experiment_label,
    experiments,
)
from bezkit.experiments.statistics import Interval, better, paired_difference
from bezkit.plot.style import COLORS
from bezkit.widgets.base import WidgetBundle

__all__ = ["CHAIN_COMPARISONS", "chain_comparison", "chains_widget"]

#: What a chain round is compared with: label -> key.
CHAIN_COMPARISONS: tuple[tuple[str, str], ...] = (
    ("the reflow chain, same round", "reflow"),
    ("the same chain at round 1", "round1"),
)
_W2_FIELDS = ("w2_many_steps", "w2_one_step")


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


def _err(ivs: Sequence[Interval]) -> dict[str, Any]:
    return dict(
        type="data",
        symmetric=False,
        array=[iv.high - iv.mean for iv in ivs],
        arrayminus=[iv.mean - iv.low for iv in ivs],
    )


def _chain_experiments(results: Any) -> list[Experiment]:
    exps = [e for e in experiments(results) if e.get("chains")]
    if not exps:
        raise ValueError("the results hold no chains (run `bezkit experiment` with --rounds >= 2)")
    return exps


def _palette(kinds: Sequence[str]) -> dict[str, str]:
    return {kind: f"hsl({(i * 97 + 210) % 360}, 65%, 42%)" for i, kind in enumerate(kinds)}


def _figure(kinds: Sequence[str]) -> go.FigureWidget:
    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.55, 0.45],
            subplot_titles=["mean and 95% interval over seeds", "paired difference at round k"],
            horizontal_spacing=0.2,
        )
    )
    palette = _palette(kinds)
    for kind in kinds:
        fig.add_scatter(
            name=kind, mode="lines+markers", row=1, col=1, line=dict(color=palette[kind])
        )
    fig.add_scatter(name="round k", mode="lines", row=1, col=1, line=dict(color="#555", dash="dot"))
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=1,
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    fig.add_scatter(
        name="differences",
        mode="markers",
        row=1,
        col=2,
        showlegend=False,
        marker=dict(size=10),
    )
    fig.add_scatter(
        name="zero", mode="lines", row=1, col=2, line=dict(color="#888"), showlegend=False
    )
    fig.update_xaxes(title_text="round k", dtick=1, row=1, col=1)
    fig.update_layout(
        width=1000,
        height=460,
        margin=dict(l=60, r=10, t=40, b=30),
        legend=dict(y=-0.2, orientation="h"),
    )
    return fig


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
    if field not in CHAIN_FIELDS:
        raise ValueError(f"unknown chain field {field!r}; known: {', '.join(CHAIN_FIELDS)}")
    chain_comparison(exps[0], field, 1, against=against)  # validates ``against``
    labels = [experiment_label(e) for e in exps]
    kinds = list(dict.fromkeys(c["chain"] for e in exps for c in e["chains"]))
    rounds = sorted({c["k"] for e in exps for c in e["chains"]})
    fig = _figure(kinds)
    palette = _palette(kinds)
    controls: dict[str, widgets.Widget] = {
        "pair": widgets.Dropdown(options=labels, value=labels[0], description="pair"),
        "chains": widgets.SelectMultiple(
            options=kinds, value=tuple(kinds), description="chains", rows=max(2, len(kinds))
        ),
        "field": widgets.Dropdown(
            options=[(f.replace("_", " "), f) for f in CHAIN_FIELDS],
            value=field,
            description="metric",
        ),
        "against": widgets.Dropdown(
            options=CHAIN_COMPARISONS, value=against, description="against"
        ),
        "k": widgets.IntSlider(
            value=rounds[-1] if k is None else min(max(int(k), rounds[0]), rounds[-1]),
            min=rounds[0],
            max=rounds[-1],
            description="round k",
        ),
    }
    readout = widgets.HTML()
    state: dict[str, Any] = {}
    traces = {tr.name: tr for tr in fig.data}

    def refresh() -> None:
        exp = exps[labels.index(controls["pair"].value)]
        fld, kk, base = controls["field"].value, int(controls["k"].value), controls["against"].value
        shown = [c for c in kinds if c in controls["chains"].value]
        series = {c: v for c, v in chain_by_k(exp, fld).items() if c in shown}
        diffs = {
            c: iv for c, iv in chain_comparison(exp, fld, kk, against=base).items() if c in shown
        }
        values = [iv for by_k in series.values() for iv in by_k.values()]
        low = min((iv.low for iv in values), default=0.0)
        high = max((iv.high for iv in values), default=1.0)
        floor = sum(exp["noise_floor"]) / len(exp["noise_floor"])
        with fig.batch_update():
            for c in kinds:
                by_k = series.get(c, {})
                ks = sorted(by_k)
                traces[c].x, traces[c].y = ks, [by_k[x].mean for x in ks]
                traces[c].error_y = _err([by_k[x] for x in ks])
            traces["round k"].x, traces["round k"].y = [kk, kk], [low, high]
            w2 = fld in _W2_FIELDS
            traces["noise floor"].x = [rounds[0], rounds[-1]] if w2 else []
            traces["noise floor"].y = [floor, floor] if w2 else []
            names = list(diffs)
            tr = traces["differences"]
            tr.x, tr.y = [diffs[n].mean for n in names], names
            tr.error_x = _err([diffs[n] for n in names])
            tr.marker.color = [palette[n] for n in names]
            traces["zero"].x, traces["zero"].y = (
                ([0.0, 0.0], [names[0], names[-1]]) if names else ([], [])
            )
            fig.layout.yaxis.title.text = fld.replace("_", " ")
            what = "minus the reflow chain" if base == "reflow" else "minus its round 1"
            fig.layout.xaxis2.title.text = f"round {kk} {what} (negative = lower)"
        state.update(experiment=exp, series=series, differences=diffs, k=kk, field=fld)
        parts = [f"<b>{html.escape(controls['pair'].value)}</b>, {html.escape(fld)}, round {kk}"]
        for c, by_k in series.items():
            if kk in by_k:
                parts.append(f"{html.escape(c)}: {by_k[kk].format()}")
        for c, iv in diffs.items():
            other = "reflow" if base == "reflow" else f"{c} at round 1"
            parts.append(
                f"{html.escape(c)} - {html.escape(other)}: {iv.format()} "
                f"(lower? {html.escape(better(iv))})"
            )
        readout.value = "<br>".join(parts)

    for ctrl in controls.values():
        ctrl.observe(lambda _c: refresh(), names="value")
    refresh()
    left = widgets.VBox([controls["pair"], controls["field"], controls["against"], controls["k"]])
    box = widgets.VBox([widgets.HBox([left, controls["chains"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
