"""Sampling with few or many solver steps (lessons 01 and 04): one model and a solver
(:func:`steps_widget`), or several models with Euler steps (:func:`compare_steps_widget`)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.data.toy2d import Sampler
from bezkit.metrics.wasserstein import noise_floor as w2_noise_floor
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.plot.style import COLORS
from bezkit.solvers.fixed_step import FIXED_STEP
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import WidgetBundle, polylines

__all__ = ["compare_steps_widget", "steps_widget"]


def steps_widget(
    model: nn.Module,
    source: Sampler | Tensor,
    *,
    target: Sampler | None = None,
    reference: Tensor | None = None,
    noise_floor: float | None = None,
    n: int = 1000,
    seed: int = 0,
    max_steps: int = 64,
    steps: int = 1,
    methods: Sequence[str] = ("euler", "midpoint", "heun", "rk4"),
    m_paths: int = 40,
    lim: float | None = None,
) -> WidgetBundle:
    """A slider over the number of solver steps: generated samples, W2 and NFE.

    ``source`` is a sampler (``n`` seeded points are drawn) or fixed starting points ``(n, 2)``.
    W2 is computed against ``reference`` (or ``n`` seeded samples of ``target``); the noise floor
    (W2 between two samples of the target of that size) is drawn beside it when known.

    Controls: ``steps`` (``IntSlider`` 1..``max_steps``, ``continuous_update=False``) and ``method``
    (a fixed-step solver; NFE = steps x evaluations per step). Traces: ``reference``, ``generated``,
    ``paths`` (the solver's polylines for ``m_paths`` samples), ``noise floor`` and one
    ``W2 <method>`` per solver with every (NFE, W2) computed so far. ``state["results"]`` caches
    ``{(method, steps): {"w2", "nfe", "seconds", ...}}``; ``state["current"]`` is the one drawn.
    The model is put in eval mode.
    """
    methods = [m for m in methods if m in FIXED_STEP]
    if not methods:
        raise ValueError(f"steps_widget needs fixed-step solvers among {list(FIXED_STEP)}")
    if isinstance(source, Tensor):
        x0 = source.float()
    else:
        x0 = source.sample(n, torch.Generator().manual_seed(seed))
    if reference is None and target is not None:
        reference = target.sample(x0.shape[0], torch.Generator().manual_seed(seed + 1))
    if noise_floor is None and target is not None:
        noise_floor = w2_noise_floor(target, x0.shape[0], seed=seed + 2)
    ref = None if reference is None else to_numpy(reference)
    path_idx = subsample(x0.shape[0], m_paths, seed)
    max_steps = max(1, int(max_steps))
    max_nfe = max_steps * max(FIXED_STEP[m][1] for m in methods)

    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.58, 0.42],
            subplot_titles=["samples", "W2 against NFE"],
            horizontal_spacing=0.1,
        )
    )
    fig.add_scatter(
        name="reference",
        mode="markers",
        row=1,
        col=1,
        x=[] if ref is None else ref[:, 0],
        y=[] if ref is None else ref[:, 1],
        marker=dict(size=3, color=COLORS["target"], opacity=0.35),
    )
    fig.add_scatter(
        name="generated",
        mode="markers",
        row=1,
        col=1,
        marker=dict(size=3, color=COLORS["generated"], opacity=0.7),
    )
    fig.add_scatter(
        name="paths",
        mode="lines+markers",
        row=1,
        col=1,
        line=dict(color=COLORS["trajectory"], width=1),
        marker=dict(size=3, color=COLORS["trajectory"]),
    )
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=2,
        x=[1, max_nfe] if noise_floor is not None else [],
        y=[noise_floor] * 2 if noise_floor is not None else [],
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    for i, m in enumerate(methods):
        fig.add_scatter(
            name=f"W2 {m}",
            mode="lines+markers",
            row=1,
            col=2,
            x=[],
            y=[],
            line=dict(color=f"hsl({(i * 85) % 360}, 60%, 40%)"),
        )
    fig.add_scatter(
        name="current",
        mode="markers",
        row=1,
        col=2,
        x=[],
        y=[],
        marker=dict(size=14, color=COLORS["crossing"], symbol="circle-open", line=dict(width=3)),
        showlegend=False,
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim], row=1, col=1)
        fig.update_yaxes(range=[-lim, lim], row=1, col=1)
    fig.update_xaxes(type="log", title_text="NFE", row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=900,
        height=440,
        margin=dict(l=30, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.12),
    )

    controls: dict[str, widgets.Widget] = {
        "steps": widgets.IntSlider(
            value=min(max(1, int(steps)), max_steps),
            min=1,
            max=max_steps,
            step=1,
            description="steps",
            continuous_update=False,
        ),
        "method": widgets.Dropdown(options=list(methods), value=methods[0], description="solver"),
    }
    readout = widgets.HTML()
    results: dict[tuple[str, int], dict[str, Any]] = {}
    state: dict[str, Any] = {
        "results": results,
        "x0": x0,
        "reference": reference,
        "noise_floor": noise_floor,
        "current": None,
    }
    traces = {tr.name: tr for tr in fig.data}
    model.eval()

    def compute(method: str, k: int) -> dict[str, Any]:
        import time

        t0 = time.perf_counter()
        sol = solve_ode(model, x0, method=method, steps=k, record=True)
        out: dict[str, Any] = {
            "nfe": sol.nfe,
            "x": sol.x,
            "trajectory": sol.trajectory,
            "w2": math.nan,
            "error": None,
        }
        if not torch.isfinite(sol.x).all():
            out["error"] = "the samples contain NaN or inf"
        elif reference is not None:
            out["w2"] = wasserstein2(sol.x, reference)
        out["seconds"] = time.perf_counter() - t0
        return out

    def refresh() -> None:
        method, k = controls["method"].value, int(controls["steps"].value)
        key = (method, k)
        if key not in results:
            try:
                results[key] = compute(method, k)
            except (ValueError, RuntimeError, FloatingPointError) as err:
                results[key] = {
                    "nfe": k * FIXED_STEP[method][1],
                    "x": None,
                    "trajectory": None,
                    "w2": math.nan,
                    "error": str(err),
                    "seconds": 0.0,
                }
        res = results[key]
        with fig.batch_update():
            if res["x"] is not None:
                x = to_numpy(res["x"])
                paths = np.transpose(to_numpy(res["trajectory"])[:, path_idx], (1, 0, 2))
                px, py = polylines(paths)
                traces["generated"].x, traces["generated"].y = x[:, 0], x[:, 1]
                traces["paths"].x, traces["paths"].y = px, py
            for m in methods:
                pts = sorted(
                    (r["nfe"], r["w2"])
                    for (mm, _), r in results.items()
                    if mm == m and math.isfinite(r["w2"])
                )
                traces[f"W2 {m}"].x = [p[0] for p in pts]
                traces[f"W2 {m}"].y = [p[1] for p in pts]
            ok = math.isfinite(res["w2"])
            traces["current"].x = [res["nfe"]] if ok else []
            traces["current"].y = [res["w2"]] if ok else []
        state["current"] = {"method": method, "steps": k, "nfe": res["nfe"], "w2": res["w2"]}
        text = f"<b>{html.escape(method)}</b>, {k} step(s): <b>NFE = {res['nfe']}</b>"
        if reference is not None:
            text += f" &nbsp; W2 = {res['w2']:.3f}"
        if noise_floor is not None:
            text += f" (noise floor {noise_floor:.3f})"
        if res["error"]:
            text += (
                f" &nbsp; <span style='color:{COLORS['crossing']}'>"
                f"{html.escape(res['error'])}</span>"
            )
        readout.value = text

    controls["steps"].observe(lambda _c: refresh(), names="value")
    controls["method"].observe(lambda _c: refresh(), names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([controls["steps"], controls["method"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )


def compare_steps_widget(
    models: Mapping[str, nn.Module],
    x0: Tensor,
    reference: Tensor,
    *,
    noise_floor: float | None = None,
    max_steps: int = 16,
    steps: int = 1,
    model: str | None = None,
    precompute: Sequence[int] = (1,),
    lim: float | None = None,
) -> WidgetBundle:
    """Several models, one sampler: pick a model and a number of Euler steps.

    The left panel shows the chosen model's samples from ``x0`` over the ``reference`` target
    samples; the right panel the W2 to ``reference`` against the steps of *every* model for every
    step count computed so far (``precompute`` step counts are computed for all models at once),
    with the ``noise_floor``. Controls: ``model`` (a dropdown over ``models``' names) and ``steps``
    (``IntSlider`` 1..``max_steps``, ``continuous_update=False``). Traces: ``reference``,
    ``generated``, ``noise floor``, ``W2 <name>`` per model, ``current``. ``state["results"]``
    caches ``{(name, steps): {"w2", "nfe", "x"}}``; ``state["current"]`` is the one drawn.
    """
    if not models:
        raise ValueError("compare_steps_widget needs at least one model")
    names = list(models)
    model = names[0] if model is None else model
    if model not in models:
        raise ValueError(f"unknown model {model!r}; have {names}")
    max_steps = max(1, int(max_steps))
    ref = to_numpy(reference)
    x0 = x0.float()
    for mod in models.values():
        mod.eval()
    fig = go.FigureWidget(
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.55, 0.45],
            subplot_titles=["samples", "W2 against Euler steps"],
            horizontal_spacing=0.1,
        )
    )
    fig.add_scatter(
        name="reference",
        mode="markers",
        row=1,
        col=1,
        x=ref[:, 0],
        y=ref[:, 1],
        marker=dict(size=3, color=COLORS["target"], opacity=0.35),
    )
    fig.add_scatter(
        name="generated",
        mode="markers",
        row=1,
        col=1,
        marker=dict(size=3, color=COLORS["generated"], opacity=0.7),
    )
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        row=1,
        col=2,
        x=[1, max_steps] if noise_floor is not None else [],
        y=[noise_floor] * 2 if noise_floor is not None else [],
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    for i, name in enumerate(names):
        fig.add_scatter(
            name=f"W2 {name}",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=f"hsl({(i * 67) % 360}, 60%, 42%)"),
        )
    fig.add_scatter(
        name="current",
        mode="markers",
        row=1,
        col=2,
        marker=dict(size=14, color=COLORS["crossing"], symbol="circle-open", line=dict(width=3)),
        showlegend=False,
    )
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    if lim is not None:
        fig.update_xaxes(range=[-lim, lim], row=1, col=1)
        fig.update_yaxes(range=[-lim, lim], row=1, col=1)
    fig.update_xaxes(type="log", title_text="Euler steps (NFE)", row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=940,
        height=460,
        margin=dict(l=30, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.14),
    )
    controls: dict[str, widgets.Widget] = {
        "model": widgets.Dropdown(options=names, value=model, description="model"),
        "steps": widgets.IntSlider(
            value=min(max(1, int(steps)), max_steps),
            min=1,
            max=max_steps,
            step=1,
            description="steps",
            continuous_update=False,
        ),
    }
    readout = widgets.HTML()
    results: dict[tuple[str, int], dict[str, Any]] = {}
    state: dict[str, Any] = {"results": results, "current": None, "noise_floor": noise_floor}
    traces = {tr.name: tr for tr in fig.data}

    def compute(name: str, k: int) -> dict[str, Any]:
        if (name, k) not in results:
            with torch.no_grad():
                sol = solve_ode(models[name], x0, method="euler", steps=k)
            ok = bool(torch.isfinite(sol.x).all())
            results[(name, k)] = {
                "x": sol.x,
                "nfe": sol.nfe,
                "w2": wasserstein2(sol.x, reference) if ok else math.nan,
                "error": None if ok else "the samples contain NaN or inf",
            }
        return results[(name, k)]

    for k in precompute:
        if 1 <= int(k) <= max_steps:
            for name in names:
                compute(name, int(k))

    def refresh() -> None:
        name, k = controls["model"].value, int(controls["steps"].value)
        res = compute(name, k)
        x = to_numpy(res["x"])
        with fig.batch_update():
            traces["generated"].x, traces["generated"].y = x[:, 0], x[:, 1]
            for nm in names:
                pts = sorted(
                    (kk, r["w2"])
                    for (mm, kk), r in results.items()
                    if mm == nm and math.isfinite(r["w2"])
                )
                traces[f"W2 {nm}"].x = [p[0] for p in pts]
                traces[f"W2 {nm}"].y = [p[1] for p in pts]
            ok = math.isfinite(res["w2"])
            traces["current"].x = [k] if ok else []
            traces["current"].y = [res["w2"]] if ok else []
        state["current"] = {"model": name, "steps": k, "nfe": res["nfe"], "w2": res["w2"]}
        text = f"<b>{html.escape(name)}</b>, {k} Euler step(s) (NFE {res['nfe']}): "
        text += f"W2 = {res['w2']:.3f}"
        if noise_floor is not None:
            text += f" (noise floor {noise_floor:.3f})"
        if res["error"]:
            text += f" <span style='color:{COLORS['crossing']}'>{html.escape(res['error'])}</span>"
        readout.value = text

    controls["model"].observe(lambda _c: refresh(), names="value")
    controls["steps"].observe(lambda _c: refresh(), names="value")
    refresh()
    box = widgets.VBox([widgets.HBox([controls["model"], controls["steps"]]), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
