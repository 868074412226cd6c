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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.data.toy2d import Sampler
from bezkit.metrics.wasserstein import noise_floor as w2_noise_floor
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.plot.style import COLORS, MODE_COLORS
from bezkit.solvers.fixed_step import FIXED_STEP
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import (
    WidgetBundle,
    WidgetView,
    controls_over_figure,
    panel_figure,
    polylines,
    update_traces,
)
from bezkit.widgets.canvas import Canvas

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


@dataclass(frozen=True)
class _Choices:
    """What a steps widget lets one choose: models, fixed-step solvers, and how W2 is plotted."""

    names: list[str]
    methods: list[str]
    show_model: bool
    x_axis: str

    @property
    def show_method(self) -> bool:
        return len(self.methods) > 1

    def series(self, name: str, method: str) -> str:
        """The W2 curve a choice belongs to: per model, per method, or per ``model/method``."""
        if self.show_model and not self.show_method:
            return name
        if self.show_method and not self.show_model:
            return method
        return f"{name}/{method}" if self.show_model else name

    def all_series(self) -> list[str]:
        return list(dict.fromkeys(self.series(n, m) for n in self.names for m in self.methods))

    def x_of(self, nfe: int, steps: int) -> int:
        """A result's position on the W2 panel's x axis."""
        return nfe if self.x_axis == "nfe" else steps

    def x_title(self) -> str:
        if self.x_axis == "nfe":
            return "NFE"
        return "Euler steps (NFE)" if self.methods == ["euler"] else "steps"


class _SolveCache:
    """Each ``(model, method, steps)`` solved once from ``x0``: NFE, samples, W2 (or the error)."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        x0: Tensor,
        reference: Tensor | None,
        path_idx: np.ndarray | None,
        series: Callable[[str, str], str],
    ) -> None:
        self.models, self.x0, self.reference, self.path_idx = models, x0, reference, path_idx
        self.series = series
        self.results: dict[tuple[str, int], dict[str, Any]] = {}
        for mod in models.values():
            mod.eval()

    def compute(self, name: str, method: str, k: int) -> dict[str, Any]:
        key = (self.series(name, method), k)
        if key not in self.results:
            t0 = time.perf_counter()
            res = self._solve(name, method, k)
            res["seconds"] = time.perf_counter() - t0
            self.results[key] = res
        return self.results[key]

    def _solve(self, name: str, method: str, k: int) -> dict[str, Any]:
        """One solve and its W2; a failure (e.g. a model returning NaN) is returned, not raised."""
        try:
            with torch.no_grad():
                sol = solve_ode(
                    self.models[name],
                    self.x0,
                    method=method,
                    steps=k,
                    record=self.path_idx is not None,
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
            elif self.reference is not None:
                res["w2"] = wasserstein2(sol.x, self.reference)
        except (ValueError, RuntimeError, FloatingPointError) as err:
            nfe = k * FIXED_STEP[method][1]
            return {"nfe": nfe, "x": None, "trajectory": None, "w2": math.nan, "error": str(err)}
        return res


def _steps_figure(
    choices: _Choices,
    reference: Tensor | None,
    with_paths: bool,
    noise_floor: float | None,
    max_steps: int,
    lim: float | None,
) -> Canvas:
    """The samples panel (reference, generated, paths) and the W2 panel (noise floor, one curve
    per series, the current choice)."""
    ref = None if reference is None else to_numpy(reference)
    max_x = choices.x_of(max_steps * max(FIXED_STEP[m][1] for m in choices.methods), max_steps)
    fig = panel_figure(
        ["samples", f"W2 against {'NFE' if choices.x_axis == 'nfe' else 'steps'}"],
        [0.56, 0.44],
        width=920,
        height=460,
        lim=lim,
        font_size=13,
    )
    left, right = dict(row=1, col=1), dict(row=1, col=2)
    fig.add_scatter(
        name="reference",
        mode="markers",
        x=[] if ref is None else ref[:, 0],
        y=[] if ref is None else ref[:, 1],
        marker=dict(size=3, color=COLORS["target"], opacity=0.35),
        **left,
    )
    fig.add_scatter(
        name="generated",
        mode="markers",
        marker=dict(size=3, color=COLORS["generated"], opacity=0.7),
        **left,
    )
    if with_paths:
        fig.add_scatter(
            name="paths",
            mode="lines+markers",
            line=dict(color=COLORS["trajectory"], width=1),
            marker=dict(size=3, color=COLORS["trajectory"]),
            **left,
        )
    fig.add_scatter(
        name="noise floor",
        mode="lines",
        x=[1, max_x] if noise_floor is not None else [],
        y=[noise_floor] * 2 if noise_floor is not None else [],
        line=dict(color=COLORS["floor"], dash="dash"),
        **right,
    )
    for i, label in enumerate(choices.all_series()):
        fig.add_scatter(
            name=f"W2 {label}",
            mode="lines+markers",
            line=dict(color=MODE_COLORS[i % len(MODE_COLORS)]),
            **right,
        )
    fig.add_scatter(
        name="current",
        mode="markers",
        marker=dict(size=14, color=COLORS["crossing"], symbol="circle-open", line=dict(width=3)),
        showlegend=False,
        **right,
    )
    fig.update_xaxes(type="log", title_text=choices.x_title(), row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    return Canvas(fig)


def _steps_controls(
    choices: _Choices, model: str, steps: int, max_steps: int
) -> dict[str, widgets.Widget]:
    controls: dict[str, widgets.Widget] = {}
    if choices.show_model:
        controls["model"] = widgets.Dropdown(
            options=choices.names, value=model, description="model"
        )
    controls["steps"] = widgets.IntSlider(
        value=min(max(1, int(steps)), max_steps),
        min=1,
        max=max_steps,
        step=1,
        description="steps",
        continuous_update=False,
    )
    if choices.show_method:
        controls["method"] = widgets.Dropdown(
            options=list(choices.methods), value=choices.methods[0], description="solver"
        )
    return controls


class _StepsView(WidgetView):
    """The steps widget's controls (``model``, ``steps``, ``method``) and drawing."""

    def __init__(
        self,
        solver: _SolveCache,
        choices: _Choices,
        model: str,
        steps: int,
        max_steps: int,
        noise_floor: float | None,
        lim: float | None,
    ) -> None:
        super().__init__()
        self.solver, self.choices, self.model, self.noise_floor = (
            solver,
            choices,
            model,
            noise_floor,
        )
        with_paths = solver.path_idx is not None
        self.figure = _steps_figure(
            choices, solver.reference, with_paths, noise_floor, max_steps, lim
        )
        self.controls = _steps_controls(choices, model, steps, max_steps)
        self.state.update(
            results=solver.results,
            x0=solver.x0,
            reference=solver.reference,
            noise_floor=noise_floor,
            current=None,
        )
        for ctrl in self.controls.values():
            ctrl.observe(self.on_change, names="value")

    def choice(self) -> tuple[str, str, int]:
        c = self.controls
        name = c["model"].value if "model" in c else self.model
        method = c["method"].value if "method" in c else self.choices.methods[0]
        return name, method, int(c["steps"].value)

    def _curves(self) -> dict[str, dict[str, Any]]:
        """Every series' finite (x, W2) computed so far, sorted along x."""
        out = {}
        for label in self.choices.all_series():
            pts = sorted(
                (self.choices.x_of(r["nfe"], kk), r["w2"])
                for (lab, kk), r in self.solver.results.items()
                if lab == label and math.isfinite(r["w2"])
            )
            out[f"W2 {label}"] = dict(x=[p[0] for p in pts], y=[p[1] for p in pts])
        return out

    def refresh(self) -> None:
        name, method, k = self.choice()
        res = self.solver.compute(name, method, k)
        changes = self._curves()
        if res["x"] is not None:
            x = to_numpy(res["x"])
            changes["generated"] = dict(x=x[:, 0], y=x[:, 1])
            if self.solver.path_idx is not None:
                traj = to_numpy(res["trajectory"])[:, self.solver.path_idx]
                px, py = polylines(np.transpose(traj, (1, 0, 2)))
                changes["paths"] = dict(x=px, y=py)
        ok = math.isfinite(res["w2"])
        changes["current"] = dict(
            x=[self.choices.x_of(res["nfe"], k)] if ok else [], y=[res["w2"]] if ok else []
        )
        update_traces(self.figure, changes)
        self.state["current"] = {
            "model": name,
            "method": method,
            "steps": k,
            "nfe": res["nfe"],
            "w2": res["w2"],
        }
        self.readout.value = self._text(name, method, k, res)

    def _text(self, name: str, method: str, k: int, res: Mapping[str, Any]) -> str:
        label = self.choices.series(name, method)
        how = "" if label.endswith(method) else f" {html.escape(method)}"
        text = f"<b>{html.escape(label)}</b>, {k}{how} step(s): <b>NFE = {res['nfe']}</b>"
        if self.solver.reference is not None:
            text += f" &nbsp; W2 = {res['w2']:.3f}"
        if self.noise_floor is not None:
            text += f" (noise floor {self.noise_floor:.3f})"
        if res["error"]:
            text += (
                f" &nbsp; <span style='color:{COLORS['crossing']}'>"
                f"{html.escape(res['error'])}</span>"
            )
        return text


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
    choices = _Choices(
        names, methods, len(names) > 1 if show_model is None else bool(show_model), x_axis
    )
    x0 = x0.float()
    path_idx = subsample(x0.shape[0], m_paths, seed) if m_paths > 0 else None
    solver = _SolveCache(models, x0, reference, path_idx, choices.series)
    max_steps = max(1, int(max_steps))
    for k in precompute:
        if 1 <= int(k) <= max_steps:
            for name in names:
                solver.compute(name, methods[0], int(k))
    view = _StepsView(solver, choices, model, steps, max_steps, noise_floor, lim)
    view.refresh()
    return controls_over_figure(view)
