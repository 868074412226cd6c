"""Sampling with few or many solver steps (lessons 01 and 04).

One builder, :func:`solver_steps_widget`: models x fixed-step solvers x number of steps, each
choice solved once and cached, the samples over the reference on the left and W2 against the
steps (or the NFE) of every choice computed so far on the right. :func:`steps_widget` (one model,
a solver dropdown) and :func:`compare_steps_widget` (several models, Euler) are that builder with
their own defaults."""

from __future__ import annotations

import html
import math
import time
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
from bezkit.plot.style import COLORS, MODE_COLORS
from bezkit.solvers.fixed_step import FIXED_STEP
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import WidgetBundle, polylines

__all__ = ["compare_steps_widget", "solver_steps_widget", "steps_widget"]


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
    if isinstance(source, Tensor):
        x0 = source.float()
    else:
        x0 = source.sample(n, torch.Generator().manual_seed(seed))
    if reference is None and target is not None:
        reference = target.sample(x0.shape[0], torch.Generator().manual_seed(seed + 1))
    if noise_floor is None and target is not None:
        noise_floor = w2_noise_floor(target, x0.shape[0], seed=seed + 2)
    return solver_steps_widget(
        {"model": model},
        x0,
        reference,
        methods=methods,
        noise_floor=noise_floor,
        max_steps=max_steps,
        steps=steps,
        precompute=(),
        m_paths=m_paths,
        seed=seed,
        lim=lim,
        x_axis="nfe",
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
    return solver_steps_widget(
        models,
        x0,
        reference,
        methods=("euler",),
        noise_floor=noise_floor,
        max_steps=max_steps,
        steps=steps,
        model=model,
        precompute=precompute,
        m_paths=0,
        lim=lim,
        x_axis="steps",
        show_model=True,
    )


def solver_steps_widget(
    models: Mapping[str, nn.Module],
    x0: Tensor,
    reference: Tensor | None,
    *,
    methods: Sequence[str] = ("euler",),
    noise_floor: float | None = None,
    max_steps: int = 16,
    steps: int = 1,
    model: str | None = None,
    precompute: Sequence[int] = (1,),
    m_paths: int = 0,
    seed: int = 0,
    lim: float | None = None,
    x_axis: str = "steps",
    show_model: bool | None = None,
) -> WidgetBundle:
    """Pick a model, a fixed-step solver and a number of steps: the samples from ``x0`` and W2.

    Each choice ``(model, method, steps)`` is solved once from ``x0`` and cached, with its NFE
    (steps x evaluations per step) and W2 to ``reference`` (NaN without one, or when the samples
    are not finite: the readout then says why instead of raising). ``precompute`` step counts are
    solved for every model with the first method at once. The left panel shows the current
    samples over ``reference`` and, with ``m_paths > 0``, the solver's polylines of ``m_paths``
    seeded samples; the right panel W2 against ``x_axis`` (``"steps"`` or ``"nfe"``) for every
    series computed so far, with the ``noise_floor``.

    Controls: ``steps`` (``IntSlider`` 1..``max_steps``, ``continuous_update=False``), ``model``
    (a dropdown, when there are several models or ``show_model``) and ``method`` (a dropdown,
    when there are several methods). One series per model, or per method when only the method is
    chosen, or per ``model/method``. Traces: ``reference``, ``generated``, ``paths`` (with
    ``m_paths``), ``noise floor``, ``W2 <series>`` and ``current``. ``state["results"]`` caches
    ``{(series, steps): {"w2", "nfe", "x", "trajectory", "error", "seconds"}}``;
    ``state["current"]`` is ``{"model", "method", "steps", "nfe", "w2"}`` of the one drawn.
    Every model is put in eval mode.
    """
    if not models:
        raise ValueError("a steps widget needs at least one model")
    names = list(models)
    model = names[0] if model is None else model
    if model not in models:
        raise ValueError(f"unknown model {model!r}; have {names}")
    methods = [m for m in methods if m in FIXED_STEP]
    if not methods:
        raise ValueError(f"a steps widget needs fixed-step solvers among {list(FIXED_STEP)}")
    if x_axis not in ("steps", "nfe"):
        raise ValueError(f"x_axis must be 'steps' or 'nfe', got {x_axis!r}")
    show_model = len(names) > 1 if show_model is None else bool(show_model)
    show_method = len(methods) > 1
    x0 = x0.float()
    ref = None if reference is None else to_numpy(reference)
    path_idx = subsample(x0.shape[0], m_paths, seed) if m_paths > 0 else None
    max_steps = max(1, int(max_steps))
    for mod in models.values():
        mod.eval()

    def series(name: str, method: str) -> str:
        if show_model and not show_method:
            return name
        if show_method and not show_model:
            return method
        return f"{name}/{method}" if show_model else name

    all_series = list(dict.fromkeys(series(n, m) for n in names for m in methods))
    max_x = max_steps * (max(FIXED_STEP[m][1] for m in methods) if x_axis == "nfe" else 1)
    # the whole figure first, then one FigureWidget: its first state holds every trace
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.56, 0.44],
        subplot_titles=["samples", f"W2 against {'NFE' if x_axis == 'nfe' else 'steps'}"],
        horizontal_spacing=0.1,
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
    if path_idx is not None:
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
        x=[1, max_x] if noise_floor is not None else [],
        y=[noise_floor] * 2 if noise_floor is not None else [],
        line=dict(color=COLORS["floor"], dash="dash"),
    )
    for i, label in enumerate(all_series):
        fig.add_scatter(
            name=f"W2 {label}",
            mode="lines+markers",
            row=1,
            col=2,
            line=dict(color=MODE_COLORS[i % len(MODE_COLORS)]),
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
    x_title = "NFE" if x_axis == "nfe" else "Euler steps (NFE)" if methods == ["euler"] else "steps"
    fig.update_xaxes(type="log", title_text=x_title, row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        width=920,
        height=460,
        margin=dict(l=40, r=10, t=40, b=30),
        legend=dict(orientation="h", y=-0.14),
        font=dict(size=13),
    )

    controls: dict[str, widgets.Widget] = {}
    if show_model:
        controls["model"] = widgets.Dropdown(options=names, value=model, description="model")
    controls["steps"] = widgets.IntSlider(
        value=min(max(1, int(steps)), max_steps),
        min=1,
        max=max_steps,
        step=1,
        description="steps",
        continuous_update=False,
    )
    if show_method:
        controls["method"] = widgets.Dropdown(
            options=list(methods), value=methods[0], description="solver"
        )
    readout = widgets.HTML()
    results: dict[tuple[str, int], dict[str, Any]] = {}
    state: dict[str, Any] = {
        "results": results,
        "x0": x0,
        "reference": reference,
        "noise_floor": noise_floor,
        "current": None,
    }
    fig = go.FigureWidget(fig)
    traces = {tr.name: tr for tr in fig.data}

    def compute(name: str, method: str, k: int) -> dict[str, Any]:
        key = (series(name, method), k)
        if key in results:
            return results[key]
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                sol = solve_ode(
                    models[name], x0, method=method, steps=k, record=path_idx is not None
                )
            res: dict[str, Any] = {
                "nfe": sol.nfe,
                "x": sol.x,
                "trajectory": sol.trajectory,
                "w2": math.nan,
                "error": None,
            }
            if not torch.isfinite(sol.x).all():
                res["error"] = "the samples contain NaN or inf"
            elif reference is not None:
                res["w2"] = wasserstein2(sol.x, reference)
        except (ValueError, RuntimeError, FloatingPointError) as err:
            res = {
                "nfe": k * FIXED_STEP[method][1],
                "x": None,
                "trajectory": None,
                "w2": math.nan,
                "error": str(err),
            }
        res["seconds"] = time.perf_counter() - t0
        results[key] = res
        return res

    for k in precompute:
        if 1 <= int(k) <= max_steps:
            for name in names:
                compute(name, methods[0], int(k))

    def choice() -> tuple[str, str, int]:
        name = controls["model"].value if "model" in controls else model
        method = controls["method"].value if "method" in controls else methods[0]
        return name, method, int(controls["steps"].value)

    def refresh() -> None:
        name, method, k = choice()
        res = compute(name, method, k)
        with fig.batch_update():
            if res["x"] is not None:
                x = to_numpy(res["x"])
                traces["generated"].x, traces["generated"].y = x[:, 0], x[:, 1]
                if path_idx is not None:
                    paths = np.transpose(to_numpy(res["trajectory"])[:, path_idx], (1, 0, 2))
                    traces["paths"].x, traces["paths"].y = polylines(paths)
            for label in all_series:
                pts = sorted(
                    (r["nfe"] if x_axis == "nfe" else kk, r["w2"])
                    for (lab, kk), r in results.items()
                    if lab == label and math.isfinite(r["w2"])
                )
                traces[f"W2 {label}"].x = [p[0] for p in pts]
                traces[f"W2 {label}"].y = [p[1] for p in pts]
            ok = math.isfinite(res["w2"])
            traces["current"].x = [res["nfe"] if x_axis == "nfe" else k] if ok else []
            traces["current"].y = [res["w2"]] if ok else []
        state["current"] = {
            "model": name,
            "method": method,
            "steps": k,
            "nfe": res["nfe"],
            "w2": res["w2"],
        }
        label = series(name, method)
        how = "" if label.endswith(method) else f" {html.escape(method)}"
        text = f"<b>{html.escape(label)}</b>, {k}{how} step(s): "
        text += f"<b>NFE = {res['nfe']}</b>"
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

    for ctrl in controls.values():
        ctrl.observe(lambda _c: refresh(), names="value")
    refresh()
    box = widgets.VBox([widgets.HBox(list(controls.values())), readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
