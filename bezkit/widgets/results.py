"""The results widget of lesson 05: browse the 2D experiment's ``results.json``."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bezkit.plot.style import COLORS
from bezkit.widgets.base import WidgetBundle

__all__ = ["error_accumulation_widget"]


def error_accumulation_widget(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    metric: str = "w2@1",
    methods: Sequence[str] | None = None,
    k: int | None = None,
) -> WidgetBundle:
    """Browse the 2D experiment's ``results.json``: nothing is computed, everything is read.

    Left panel: the chosen metric against the reflow round ``k``, one line per selected method,
    the OT baselines (trained once) as dotted horizontal lines and, for W2, the noise floor. Right
    panel: W2 against the number of Euler steps at round ``k`` for the same methods and baselines.

    Controls: ``pair`` (a dropdown over the experiments, ``"source -> target"``), ``metric``
    (``"w2@<steps>"`` for each evaluated step count, or a scalar of
    :data:`bezkit.lessons.RUN_METRICS`), ``methods`` (a ``SelectMultiple`` over the per-round
    methods), ``baselines`` (show the OT baselines) and ``k`` (the round of the right panel).
    Traces: ``<method>``, ``<baseline> (trained once)`` and ``noise floor`` on the left;
    ``<method> steps``, ``<baseline> steps`` and ``noise floor (steps)`` on the right.
    ``state`` holds the current ``experiment``, ``series`` (``{method: {k: value}}``) and
    ``table`` (round ``k``'s values).
    """
    from bezkit.lessons import (
        BASELINES,
        RUN_METRICS,
        experiment_label,
        experiments,
        methods_of,
        metric_value,
        step_counts,
    )

    exps = experiments(results)
    if not exps:
        raise ValueError("the results hold no experiment")
    labels = [experiment_label(e) for e in exps]
    per_round = list(dict.fromkeys(m for e in exps for m in methods_of(e, baselines=False)))
    bases = list(dict.fromkeys(m for e in exps for m in methods_of(e) if m in BASELINES))
    steps_all = sorted({s for e in exps for s in step_counts(e)})
    scalars = [
        name
        for name in RUN_METRICS
        if any(name in r["metrics"] or name in r for e in exps for r in e["runs"])
    ]
    metric_options = [(f"W2 at {s} step{'s' if s > 1 else ''}", f"w2@{s}") for s in steps_all]
    metric_options += [(name.replace("_", " "), name) for name in scalars]
    values = [v for _, v in metric_options]
    if metric not in values:
        raise ValueError(f"unknown metric {metric!r}; have {values}")
    ks_all = sorted({int(r["k"]) for e in exps for r in e["runs"] if r["method"] not in BASELINES})
    ks_all = ks_all or [1]
    chosen = per_round if methods is None else [m for m in methods if m in per_round]

    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.5, 0.5],
            subplot_titles=["metric against the reflow round k", "W2 against Euler steps at k"],
            horizontal_spacing=0.1,
        )
    )
    palette = {m: f"hsl({(i * 47) % 360}, 65%, 42%)" for i, m in enumerate(per_round)}
    base_color = {"otcfm": "#8c564b", "full-ot": "#e377c2"}
    for m in per_round:
        fig.add_scatter(
            name=m, mode="lines+markers", row=1, col=1, line=dict(color=palette[m]), legendgroup=m
        )
    for bname in bases:
        fig.add_scatter(
            name=f"{bname} (trained once)",
            mode="lines",
            row=1,
            col=1,
            line=dict(color=base_color.get(bname, "#333"), dash="dot", width=2),
            legendgroup=bname,
        )
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=1,
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    for m in per_round:
        fig.add_scatter(
            name=f"{m} steps",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=palette[m]),
            legendgroup=m,
            showlegend=False,
        )
    for bname in bases:
        fig.add_scatter(
            name=f"{bname} steps",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=base_color.get(bname, "#333"), dash="dot"),
            legendgroup=bname,
            showlegend=False,
        )
    fig.add_scatter(
        name="noise floor (steps)",
        mode="lines",
        row=1,
        col=2,
        line=dict(color=COLORS["floor"], dash="dash"),
        showlegend=False,
    )
    fig.update_xaxes(title_text="reflow round k", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="Euler steps (NFE)", type="log", row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=980,
        height=470,
        margin=dict(l=40, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.15),
    )
    controls: dict[str, widgets.Widget] = {
        "pair": widgets.Dropdown(options=labels, value=labels[0], description="pair"),
        "metric": widgets.Dropdown(options=metric_options, value=metric, description="metric"),
        "methods": widgets.SelectMultiple(
            options=per_round,
            value=tuple(chosen),
            description="methods",
            rows=min(8, max(2, len(per_round))),
        ),
        "baselines": widgets.Checkbox(
            value=True, indent=False, description="OT baselines (minibatch OT, full OT map)"
        ),
        "k": widgets.IntSlider(
            value=ks_all[-1] if k is None else min(max(int(k), ks_all[0]), ks_all[-1]),
            min=ks_all[0],
            max=ks_all[-1],
            step=1,
            description="round k",
        ),
    }
    readout = widgets.HTML()
    state: dict[str, Any] = {}
    traces = {tr.name: tr for tr in fig.data}

    def value_of(run: Mapping[str, Any], key: str) -> float:
        try:
            if key.startswith("w2@"):
                return metric_value(run, "w2", int(key[3:]))
            return metric_value(run, key)
        except KeyError:
            return math.nan

    def refresh() -> None:
        exp = exps[labels.index(controls["pair"].value)]
        key = controls["metric"].value
        shown = set(controls["methods"].value)
        with_bases = bool(controls["baselines"].value)
        kk = int(controls["k"].value)
        ks = sorted({int(r["k"]) for r in exp["runs"] if r["method"] not in BASELINES}) or [1]
        series: dict[str, dict[int, float]] = {}
        curves: dict[str, dict[int, float]] = {}
        base_vals: dict[str, float] = {}
        for r in exp["runs"]:
            if r["method"] in BASELINES:
                base_vals[r["method"]] = value_of(r, key)
                curves[r["method"]] = {int(s): float(v) for s, v in r["metrics"]["w2"].items()}
                continue
            series.setdefault(r["method"], {})[int(r["k"])] = value_of(r, key)
            if int(r["k"]) == kk:
                curves[r["method"]] = {int(s): float(v) for s, v in r["metrics"]["w2"].items()}
        floor = exp.get("noise_floor")
        steps_here = step_counts(exp)
        span = [ks[0] - 0.2, ks[-1] + 0.2]
        with fig.batch_update():
            for m in per_round:
                on = m in shown and m in series
                pts = sorted(series.get(m, {}).items()) if on else []
                traces[m].x, traces[m].y = [p[0] for p in pts], [p[1] for p in pts]
                c = sorted(curves.get(m, {}).items()) if m in shown else []
                traces[f"{m} steps"].x = [p[0] for p in c]
                traces[f"{m} steps"].y = [p[1] for p in c]
            for bname in bases:
                v = base_vals.get(bname, math.nan)
                on = with_bases and math.isfinite(v)
                traces[f"{bname} (trained once)"].x = span if on else []
                traces[f"{bname} (trained once)"].y = [v, v] if on else []
                c = sorted(curves.get(bname, {}).items()) if with_bases else []
                traces[f"{bname} steps"].x = [p[0] for p in c]
                traces[f"{bname} steps"].y = [p[1] for p in c]
            w2_metric = key.startswith("w2@") and floor is not None
            traces["noise floor"].x = span if w2_metric else []
            traces["noise floor"].y = [floor, floor] if w2_metric else []
            ends = [steps_here[0], steps_here[-1]] if steps_here and floor is not None else []
            traces["noise floor (steps)"].x = ends
            traces["noise floor (steps)"].y = [floor] * len(ends)
            label = {v: name for name, v in metric_options}[key]
            fig.layout.yaxis.title.text = label
        table = {m: series[m][kk] for m in per_round if m in shown and kk in series.get(m, {})}
        if with_bases:
            table.update({f"{b} (once)": v for b, v in base_vals.items()})
        state.update(experiment=exp, series=series, table=table, k=kk, metric=key)
        spread = exp.get("noise_floor_std")
        parts = [f"<b>{html.escape(controls['pair'].value)}</b>, round k = {kk}:"]
        parts += [f"{html.escape(m)} {v:.4g}" for m, v in table.items() if math.isfinite(v)]
        if floor is not None:
            parts.append(
                f"W2 noise floor {floor:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")
            )
        readout.value = " &nbsp;|&nbsp; ".join(parts)

    for ctrl in controls.values():
        ctrl.observe(lambda _c: refresh(), names="value")
    refresh()
    left = widgets.VBox(
        [controls["pair"], controls["metric"], controls["k"], controls["baselines"]]
    )
    box = widgets.VBox([widgets.HBox([left, controls["methods"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
