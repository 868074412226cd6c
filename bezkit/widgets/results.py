"""The results widget of lesson 05: browse the 2D experiment's ``results.json`` (schema 2).

Nothing is computed but means, intervals and paired differences of the stored numbers, all read
through :mod:`bezkit.experiments.results`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from bezkit.experiments.results import (
    Experiment,
    chain_by_k,
    chain_difference_by_k,
    experiment_label,
    experiments,
    methods_of,
    metric_by_k,
    paired_table,
    student_rounds,
    twin_table,
)
from bezkit.experiments.statistics import Interval
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

__all__ = ["error_accumulation_widget"]

_VIEWS = (("chains across rounds", "chains"), ("students at round k", "students"))
_BASES = (("plain k-RF distillation, equal NFE", "distill"), ("its linear twin", "twin"))

#: What one view draws: the left panel's series (``{name: {k: Interval}}``), the right panel's
#: differences (``{name: Interval}`` or, chains minus the reflow chain, ``{name: {k: Interval}}``)
#: and the changes of the traces that only this view has.
_Drawn = tuple[
    dict[str, dict[int, Interval]],
    dict[str, Any],
    dict[str, dict[str, Any]],
]


def _figure(kinds: Sequence[str], students: Sequence[str]) -> Canvas:
    """Left: one series per chain and per student; right: one dotted ``<chain> - reflow`` series
    per chain (chains view) and the differences (students view)."""
    names = [*kinds, *students]
    palette = {name: f"hsl({(i * 47) % 360}, 65%, 42%)" for i, name in enumerate(names)}
    left = [go.Scatter(name=n, mode="lines+markers", line=dict(color=palette[n])) for n in names]
    right = [
        go.Scatter(
            name=f"{kind} - reflow",
            mode="lines+markers",
            line=dict(color=palette[kind], dash="dot"),
            showlegend=False,
        )
        for kind in kinds
    ]
    return interval_figure(
        left,
        right,
        titles=["mean and 95% interval over seeds", "paired differences"],
        height=480,
        margin_left=40,
    )


def _verdict(iv: Interval) -> str:
    return "distinguishable" if iv.excludes_zero() else "not distinguishable"


class _ResultsView(WidgetView):
    """The results widget's controls and its two views: chains across rounds, students at
    round k."""

    def __init__(self, exps: list[Experiment], view: str, field: str, k: int | None) -> None:
        super().__init__()
        self.exps = exps
        self.labels = [experiment_label(e) for e in exps]
        self.kinds = list(dict.fromkeys(c["chain"] for e in exps for c in e.get("chains", [])))
        self.students = list(dict.fromkeys(m for e in exps for m in methods_of(e, baselines=False)))
        ks = sorted({kk for e in exps for kk in student_rounds(e)}) or [1]
        self.figure = _figure(self.kinds, self.students)
        picked = tuple(
            m for m in self.students if m.startswith(("rf-distill", "bezier-quadratic-2"))
        )
        self.controls = {
            "pair": pair_control(self.labels),
            "view": widgets.ToggleButtons(options=_VIEWS, value=view, description="view"),
            "field": field_control(field, "chain field"),
            "chains": chains_control(self.kinds),
            "methods": widgets.SelectMultiple(
                options=self.students,
                value=picked,
                description="methods",
                rows=min(8, max(2, len(self.students))),
            ),
            "baseline": widgets.Dropdown(options=_BASES, value="distill", description="against"),
            "k": widgets.IntSlider(
                value=ks[-1] if k is None else min(max(int(k), ks[0]), ks[-1]),
                min=ks[0],
                max=ks[-1],
                description="round k",
                disabled=ks[0] == ks[-1],  # students at one round only: nothing to pick
            ),
        }
        for ctrl in self.controls.values():
            ctrl.observe(self.on_change, names="value")

    def refresh(self) -> None:
        exp = self.exps[self.labels.index(self.controls["pair"].value)]
        mode = self.controls["view"].value
        kk = int(self.controls["k"].value)
        series, diffs, drawn = self._chains(exp) if mode == "chains" else self._students(exp, kk)
        empty: dict[str, Any] = dict(x=[], y=[])
        changes: dict[str, dict[str, Any]] = {n: empty for n in self.kinds + self.students}
        changes.update({f"{kind} - reflow": empty for kind in self.kinds})
        changes.update({n: interval_series(by_k) for n, by_k in series.items()})
        changes.update(drawn)
        self.update(changes)
        self.state.update(experiment=exp, series=series, differences=diffs, view=mode, k=kk)
        self.readout.value = self._text(diffs)

    def _chains(self, exp: Experiment) -> _Drawn:
        """The chains view: ``field`` of the selected chains against k; right, each chain minus
        the reflow chain, paired by seed and draw."""
        fld = self.controls["field"].value
        shown = list(self.controls["chains"].value)
        all_series = chain_by_k(exp, fld) if exp.get("chains") else {}
        series = {c: all_series[c] for c in shown if c in all_series}
        diffs = chain_difference_by_k(exp, fld) if exp.get("chains") else {}
        span = sorted({x for by_k in series.values() for x in by_k}) or [1]
        drawn = {f"{c} - reflow": interval_series(v) for c, v in diffs.items() if c in shown}
        drawn["noise floor"] = noise_floor_line(
            span, mean_noise_floor(exp) if fld in W2_FIELDS else None
        )
        drawn.update(difference_bars({}))
        drawn["zero"] = dict(x=[span[0], span[-1]], y=[0.0, 0.0])
        self.figure.update_layout(
            {
                "yaxis.title.text": fld.replace("_", " "),
                "xaxis2.title.text": "round k",
                "yaxis2.title.text": "chain minus reflow chain",
            }
        )
        return series, diffs, drawn

    def _students(self, exp: Experiment, kk: int) -> _Drawn:
        """The students view: their W2 at their own NFE against k; right, their paired
        differences at round ``kk`` against plain k-RF distillation or their linear twin."""
        shown = list(self.controls["methods"].value)
        series = metric_by_k(exp, methods=[m for m in shown if m in self.students])
        diffs: dict[str, Any] = {}
        if kk in student_rounds(exp):
            if self.controls["baseline"].value == "distill":
                diffs = paired_table(exp, kk, methods=shown)
            else:
                diffs = {m: v for m, v in twin_table(exp, kk).items() if m in shown}
        span = sorted({x for by_k in series.values() for x in by_k}) or [1]
        drawn = difference_bars(diffs)
        drawn["noise floor"] = noise_floor_line(span, mean_noise_floor(exp))
        self.figure.update_layout(
            {
                "yaxis.title.text": "W2 at the student's own NFE",
                "xaxis2.title.text": f"W2 difference at k = {kk} (negative = better)",
                "yaxis2.title.text": "",
            }
        )
        return series, diffs, drawn

    def _text(self, diffs: Mapping[str, Any]) -> str:
        parts = [f"<b>{html.escape(self.controls['pair'].value)}</b>"]
        for name, iv in diffs.items():
            if isinstance(iv, Interval):
                parts.append(f"{html.escape(name)}: {iv.format()} ({_verdict(iv)})")
            else:
                last = max(iv)
                parts.append(
                    f"{html.escape(name)} - reflow at k={last}: {iv[last].format()} "
                    f"({_verdict(iv[last])})"
                )
        return "<br>".join(parts)


def error_accumulation_widget(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    view: str = "chains",
    field: str = "w2_many_steps",
    k: int | None = None,
) -> WidgetBundle:
    """Pick what to compare in the experiment's results; every point is a mean over seeds with its
    95% interval as an error bar.

    ``view="chains"``: left, a chain field (``field``, one of
    :data:`bezkit.experiments.results.CHAIN_FIELDS`) against the round k for the selected chains;
    right, each chain minus the reflow chain, paired by seed and draw. ``view="students"``: left,
    the selected students' W2 at the NFE each is made for, against k; right, their paired
    differences at round ``k`` against plain k-RF distillation at equal NFE or against their
    linear twin (same pairs, only the curve differs).

    Controls: ``pair``, ``view``, ``field``, ``chains`` and ``methods`` (``SelectMultiple``),
    ``baseline`` (``"distill"`` or ``"twin"``), ``k``. Traces: ``<chain>`` and ``<chain> - reflow``
    (chains view), ``<method>`` and ``differences`` (students view), ``noise floor``, ``zero``.
    ``state`` holds ``series`` (left panel, ``{name: {k: Interval}}``) and ``differences`` (right).
    """
    exps = experiments(results)
    if not exps:
        raise ValueError("the results hold no experiment")
    if view not in dict(_VIEWS).values():
        raise ValueError(f"unknown view {view!r}; use 'chains' or 'students'")
    v = _ResultsView(exps, view, field, k)
    v.refresh()
    c = v.controls
    left = widgets.VBox([c["pair"], c["view"], c["field"], c["k"], c["baseline"]])
    top = widgets.HBox([left, c["chains"], c["methods"]])
    return v.bundle(widgets.VBox([top, v.readout, v.figure]))
