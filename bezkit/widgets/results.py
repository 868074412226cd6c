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
from plotly.subplots import make_subplots

from bezkit.experiments.results import (
    CHAIN_FIELDS,
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
from bezkit.plot.style import COLORS
from bezkit.widgets.base import WidgetBundle

__all__ = ["error_accumulation_widget"]

_VIEWS = (("chains across rounds", "chains"), ("students at round k", "students"))
_BASES = (("plain k-RF distillation, equal NFE", "distill"), ("its linear twin", "twin"))


def _err(ivs: Sequence[Interval]) -> dict[str, Any]:
    return dict(
        type="data",
        symmetric=False,
        array=[iv.high - iv.mean for iv in ivs],
        arrayminus=[iv.mean - iv.low for iv in ivs],
    )


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
    if view not in dict((v, v) for _, v in _VIEWS):
        raise ValueError(f"unknown view {view!r}; use 'chains' or 'students'")
    if field not in CHAIN_FIELDS:
        raise ValueError(f"unknown chain field {field!r}; known: {', '.join(CHAIN_FIELDS)}")
    labels = [experiment_label(e) for e in exps]
    kinds = list(dict.fromkeys(c["chain"] for e in exps for c in e.get("chains", [])))
    students = list(dict.fromkeys(m for e in exps for m in methods_of(e, baselines=False)))
    ks_all = sorted({kk for e in exps for kk in student_rounds(e)}) or [1]

    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.55, 0.45],
            subplot_titles=["mean and 95% interval over seeds", "paired differences"],
            horizontal_spacing=0.2,
        )
    )
    palette = {name: f"hsl({(i * 47) % 360}, 65%, 42%)" for i, name in enumerate(kinds + students)}
    for name in kinds + students:
        fig.add_scatter(
            name=name, mode="lines+markers", row=1, col=1, line=dict(color=palette[name])
        )
    for kind in kinds:
        fig.add_scatter(
            name=f"{kind} - reflow",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=palette[kind], dash="dot"),
            showlegend=False,
        )
    fig.add_scatter(name="differences", mode="markers", row=1, col=2, showlegend=False)
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=1,
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    fig.add_scatter(
        name="zero", mode="lines", row=1, col=2, line=dict(color="#888"), showlegend=False
    )
    fig.update_xaxes(title_text="round k", dtick=1, row=1, col=1)
    fig.update_layout(
        width=1000,
        height=480,
        margin=dict(l=40, r=10, t=40, b=30),
        legend=dict(y=-0.2, orientation="h"),
    )
    controls: dict[str, widgets.Widget] = {
        "pair": widgets.Dropdown(options=labels, value=labels[0], description="pair"),
        "view": widgets.ToggleButtons(options=_VIEWS, value=view, description="view"),
        "field": widgets.Dropdown(
            options=[(f.replace("_", " "), f) for f in CHAIN_FIELDS],
            value=field,
            description="chain field",
        ),
        "chains": widgets.SelectMultiple(
            options=kinds, value=tuple(kinds), description="chains", rows=max(2, len(kinds))
        ),
        "methods": widgets.SelectMultiple(
            options=students,
            value=tuple(m for m in students if m.startswith(("rf-distill", "bezier-quadratic-2"))),
            description="methods",
            rows=min(8, max(2, len(students))),
        ),
        "baseline": widgets.Dropdown(options=_BASES, value="distill", description="against"),
        "k": widgets.IntSlider(
            value=ks_all[-1] if k is None else min(max(int(k), ks_all[0]), ks_all[-1]),
            min=ks_all[0],
            max=ks_all[-1],
            description="round k",
            disabled=ks_all[0] == ks_all[-1],  # students at one round only: nothing to pick
        ),
    }
    readout = widgets.HTML()
    state: dict[str, Any] = {}
    traces = {tr.name: tr for tr in fig.data}

    def clear(names: Sequence[str]) -> None:
        for n in names:
            traces[n].x, traces[n].y = [], []

    def refresh() -> None:
        exp = exps[labels.index(controls["pair"].value)]
        mode = controls["view"].value
        kk = int(controls["k"].value)
        floor = sum(exp["noise_floor"]) / len(exp["noise_floor"])
        series: dict[str, dict[int, Interval]] = {}
        diffs: dict[str, Any] = {}
        with fig.batch_update():
            clear(kinds + students + [f"{c} - reflow" for c in kinds] + ["differences"])
            if mode == "chains":
                fld = controls["field"].value
                shown = [c for c in controls["chains"].value]
                all_series = chain_by_k(exp, fld) if exp.get("chains") else {}
                series = {c: all_series[c] for c in shown if c in all_series}
                for c, by_k in series.items():
                    ks = sorted(by_k)
                    traces[c].x, traces[c].y = ks, [by_k[x].mean for x in ks]
                    traces[c].error_y = _err([by_k[x] for x in ks])
                if exp.get("chains"):
                    diffs = chain_difference_by_k(exp, fld)
                for c, by_k in diffs.items():
                    if c not in shown:
                        continue
                    ks = sorted(by_k)
                    tr = traces[f"{c} - reflow"]
                    tr.x, tr.y = ks, [by_k[x].mean for x in ks]
                    tr.error_y = _err([by_k[x] for x in ks])
                span = sorted({x for by_k in series.values() for x in by_k}) or [1]
                fig.layout.yaxis.title.text = fld.replace("_", " ")
                fig.layout.xaxis2.title.text = "round k"
                fig.layout.yaxis2.title.text = "chain minus reflow chain"
                traces["zero"].x, traces["zero"].y = [span[0], span[-1]], [0.0, 0.0]
                w2 = fld in ("w2_many_steps", "w2_one_step")
                traces["noise floor"].x = [span[0], span[-1]] if w2 else []
                traces["noise floor"].y = [floor, floor] if w2 else []
            else:
                shown = [m for m in controls["methods"].value]
                by = metric_by_k(exp, methods=[m for m in shown if m in students])
                series = by
                for m, by_k in by.items():
                    ks = sorted(by_k)
                    traces[m].x, traces[m].y = ks, [by_k[x].mean for x in ks]
                    traces[m].error_y = _err([by_k[x] for x in ks])
                if kk in student_rounds(exp):
                    table = (
                        paired_table(exp, kk, methods=shown)
                        if controls["baseline"].value == "distill"
                        else {m: v for m, v in twin_table(exp, kk).items() if m in shown}
                    )
                    diffs = table
                names = list(diffs)
                tr = traces["differences"]
                tr.x, tr.y = [diffs[n].mean for n in names], names
                tr.error_x = _err([diffs[n] for n in names])
                tr.error_y = None
                fig.layout.yaxis.title.text = "W2 at the student's own NFE"
                fig.layout.xaxis2.title.text = f"W2 difference at k = {kk} (negative = better)"
                fig.layout.yaxis2.title.text = ""
                traces["zero"].x, traces["zero"].y = (
                    ([0.0, 0.0], [names[0], names[-1]]) if names else ([], [])
                )
                span = sorted({x for by_k in series.values() for x in by_k}) or [1]
                traces["noise floor"].x, traces["noise floor"].y = (
                    [span[0], span[-1]],
                    [floor, floor],
                )
        state.update(experiment=exp, series=series, differences=diffs, view=mode, k=kk)
        parts = [f"<b>{html.escape(controls['pair'].value)}</b>"]
        for name, iv in diffs.items():
            if isinstance(iv, Interval):
                verdict = "distinguishable" if iv.excludes_zero() else "not distinguishable"
                parts.append(f"{html.escape(name)}: {iv.format()} ({verdict})")
            else:
                last = max(iv)
                verdict = "distinguishable" if iv[last].excludes_zero() else "not distinguishable"
                parts.append(
                    f"{html.escape(name)} - reflow at k={last}: {iv[last].format()} ({verdict})"
                )
        readout.value = "<br>".join(parts)

    for ctrl in controls.values():
        ctrl.observe(lambda _c: refresh(), names="value")
    refresh()
    left = widgets.VBox(
        [controls["pair"], controls["view"], controls["field"], controls["k"], controls["baseline"]]
    )
    box = widgets.VBox(
        [widgets.HBox([left, controls["chains"], controls["methods"]]), readout, fig]
    )
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
