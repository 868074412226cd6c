"""See the flow respond (lesson 04): train a small Bezier distillation student on the curve family
the guide widget shows, in a few seconds, and draw it beside its teacher.

:func:`student_widget` takes the bundle of :func:`bezkit.widgets.guide_widget`. Its button reads
the guide widget's current choices (guide time ``s``, ``placement``, teacher ``guide_state`` and
regression ``target``), builds that many quadratic Bezier pairs with
:func:`bezkit.methods.bezier_distill` (data-anchored endpoints, guides from the same teacher),
fine-tunes a copy of the teacher on them for ``train_steps`` steps (a progress bar shows), then
draws the student's few-step trajectories over the teacher's and its W2 after 1, 2, 4 ... Euler
steps beside the teacher's. Each choice is trained once and cached.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.data.toy2d import Sampler
from bezkit.methods.bezier_distillation import BezierDistillConfig, bezier_distill
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.plot.style import COLORS, MODE_COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.training.config import TrainConfig
from bezkit.widgets.base import (
    WidgetBundle,
    noise_floor_trace,
    panel_figure,
    points_trace,
    polylines,
    update_traces,
)
from bezkit.widgets.canvas import Canvas

__all__ = ["few_step_w2", "student_widget"]


@torch.no_grad()
def few_step_w2(
    model: nn.Module, x0: Tensor, reference: Tensor, steps: Sequence[int]
) -> dict[int, float]:
    """``{k: W2(Euler with k steps from x0, reference)}``; NaN where the samples are not finite."""
    model.eval()
    out: dict[int, float] = {}
    for k in steps:
        x = solve_ode(model, x0, steps=int(k)).x
        out[int(k)] = wasserstein2(x, reference) if bool(torch.isfinite(x).all()) else math.nan
    return out


def _student_figure(
    teacher_traj: Any,
    x0: np.ndarray,
    teacher_w2: dict[int, float],
    steps: list[int],
    noise_floor: float | None,
    lim: float | None,
) -> Canvas:
    """The teacher's paths and W2 (drawn once) and the empty student traces, as one Canvas."""
    k_paths = steps[-1]

    # the whole figure first, then one Canvas: its first state holds every trace
    fig = panel_figure(
        [f"{k_paths} Euler step(s) from the same X0", "W2 against Euler steps"],
        [0.55, 0.45],
        width=920,
        height=440,
        lim=lim,
        font_size=13,
    )
    px, py = polylines(np.transpose(to_numpy(teacher_traj), (1, 0, 2)))
    fig.add_scatter(
        name="teacher paths",
        x=px,
        y=py,
        mode="lines+markers",
        row=1,
        col=1,
        line=dict(color=COLORS["trajectory"], width=1, dash="dot"),
        marker=dict(size=3, color=COLORS["trajectory"]),
    )
    fig.add_scatter(
        name="student paths",
        mode="lines+markers",
        row=1,
        col=1,
        line=dict(color=COLORS["curve"], width=1.5),
        marker=dict(size=4, color=COLORS["curve"]),
    )
    fig.add_trace(points_trace("X0", x0, color=COLORS["source"], size=5), row=1, col=1)
    floor = noise_floor_trace(
        x=[steps[0], steps[-1]] if noise_floor is not None else [],
        y=[noise_floor] * 2 if noise_floor is not None else [],
    )
    fig.add_trace(floor, row=1, col=2)
    fig.add_scatter(
        name="W2 teacher",
        x=list(teacher_w2),
        y=list(teacher_w2.values()),
        mode="lines+markers",
        row=1,
        col=2,
        line=dict(color=COLORS["trajectory"], dash="dot"),
    )
    fig.add_scatter(
        name="W2 earlier students",
        mode="lines+markers",
        row=1,
        col=2,
        opacity=0.45,
        line=dict(color=MODE_COLORS[0], width=1),
    )
    fig.add_scatter(
        name="W2 student",
        mode="lines+markers",
        row=1,
        col=2,
        line=dict(color=COLORS["curve"], width=3),
    )
    fig.update_xaxes(type="log", title_text="Euler steps (NFE)", row=1, col=2)
    fig.update_yaxes(title_text="W2", rangemode="tozero", row=1, col=2)
    return Canvas(fig)


def _guide_choice(guides: WidgetBundle) -> dict[str, Any]:
    """The guide widget's current choices, as :class:`BezierDistillConfig` options."""
    c = guides.controls
    return dict(
        guide_times=(round(float(c["s"].value), 6),),
        placement=c["placement"].value,
        guide_state=c["guide_state"].value,
        target=c["target"].value,
    )


def _label_of(opts: dict[str, Any]) -> str:
    return (
        f"s = {opts['guide_times'][0]:.2f}, {opts['placement']} guide, "
        f"{opts['guide_state']} state, {opts['target']} target"
    )


def _describe(w2: dict[int, float]) -> str:
    return ", ".join(f"{k} step(s) {v:.3f}" for k, v in w2.items())


def _train_student(
    teacher: nn.Module,
    source: Sampler,
    target: Sampler,
    config: TrainConfig,
    cfg: BezierDistillConfig,
    starts: Tensor,
    k_paths: int,
) -> dict[str, Any]:
    """Bezier-distil a student of ``teacher`` and record its ``k_paths``-step paths from
    ``starts``: ``{"config", "model", "trajectory", "loss"}``."""
    out = bezier_distill([teacher], source, target, config, cfg)
    model = out.model.eval()
    with torch.no_grad():
        traj = solve_ode(model, starts, steps=k_paths, record=True).trajectory
    return {
        "config": cfg,
        "model": model,
        "trajectory": to_numpy(traj),
        "loss": out.losses[-1] if out.losses else math.nan,
    }


def _checked(
    guides: WidgetBundle, steps: Sequence[int], train_steps: int, n_pairs: int
) -> list[int]:
    """The sorted step counts, after checking ``guides`` is a guide widget and the counts."""
    if "teacher" not in guides.state or "placement" not in guides.controls:
        raise ValueError(
            "student_widget needs the bundle of guide_widget (its teacher and controls)"
        )
    steps = sorted({int(k) for k in steps})
    if not steps or steps[0] < 1:
        raise ValueError(f"steps must be positive step counts, got {steps}")
    if train_steps < 1 or n_pairs < 1:
        raise ValueError("train_steps and n_pairs must be >= 1")
    return steps


def _earlier(
    students: dict[str, dict[str, Any]], current: str
) -> tuple[list[float | None], list[float | None]]:
    """The W2 curves of every student but ``current``, as one x/y list with ``None`` between."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for name, rec in students.items():
        if name != current:
            xs += [*rec["w2"], None]
            ys += [*rec["w2"].values(), None]
    return xs, ys


def student_widget(
    guides: WidgetBundle,
    source: Sampler,
    target: Sampler,
    *,
    reference: Tensor | None = None,
    noise_floor: float | None = None,
    n_eval: int = 500,
    n_pairs: int = 1000,
    train_steps: int = 300,
    batch_size: int = 256,
    lr: float = 1e-3,
    steps: Sequence[int] = (1, 2, 4),
    m_paths: int = 40,
    seed: int = 0,
    progress: bool = True,
    lim: float | None = None,
) -> WidgetBundle:
    """A button that trains a quadratic Bezier distillation student on ``guides``' curve family.

    ``guides`` is a :func:`~bezkit.widgets.guide_widget` bundle (its teacher and its controls are
    used). The student is evaluated from ``n_eval`` seeded source points against ``reference``
    (default: ``n_eval`` seeded target samples) after each number of Euler ``steps``.

    Controls: ``train`` (the button; ``.click()`` trains synchronously, also in a test).
    Traces: ``teacher paths``, ``student paths``, ``X0``, ``noise floor``, ``W2 teacher``,
    ``W2 student`` (the latest) and ``W2 earlier students``. ``state`` holds ``teacher_w2``
    (``{steps: W2}``), ``students`` (``{label: {"config", "w2", "model", "loss"}}``) and
    ``current`` (the latest label).
    """
    steps = _checked(guides, steps, train_steps, n_pairs)
    teacher: nn.Module = guides.state["teacher"]
    teacher_steps = int(guides.state.get("teacher_steps", 100))
    g = torch.Generator().manual_seed(seed)
    x0 = source.sample(n_eval, g).float()
    ref = (
        target.sample(n_eval, torch.Generator().manual_seed(seed + 1))
        if reference is None
        else reference
    )
    teacher_w2 = few_step_w2(teacher, x0, ref, steps)
    idx = torch.as_tensor(subsample(n_eval, m_paths, seed))
    k_paths = steps[-1]
    with torch.no_grad():
        teacher_traj = solve_ode(teacher, x0[idx], steps=k_paths, record=True).trajectory

    fig = _student_figure(teacher_traj, to_numpy(x0[idx]), teacher_w2, steps, noise_floor, lim)
    button = widgets.Button(
        description="train a student on this curve family",
        icon="play",
        button_style="primary",
        layout=widgets.Layout(width="300px"),
    )
    controls: dict[str, widgets.Widget] = {"train": button}
    readout = widgets.HTML()
    log = widgets.Output()  # the training's progress bar (tqdm) shows here
    students: dict[str, dict[str, Any]] = {}
    state: dict[str, Any] = {"teacher_w2": teacher_w2, "students": students, "current": None}

    def refresh() -> None:
        name = state["current"]
        teacher_text = f"<b>teacher</b>: W2 {_describe(teacher_w2)}"
        if noise_floor is not None:
            teacher_text += f" (noise floor {noise_floor:.3f})"
        if name is None:
            readout.value = teacher_text + "<br>press the button to train a student"
            return
        cur = students[name]
        earlier_x, earlier_y = _earlier(students, name)
        sx, sy = polylines(np.transpose(cur["trajectory"], (1, 0, 2)))
        update_traces(
            fig,
            {
                "student paths": dict(x=sx, y=sy),
                "W2 student": dict(x=list(cur["w2"]), y=list(cur["w2"].values())),
                "W2 earlier students": dict(x=earlier_x, y=earlier_y),
            },
        )
        readout.value = "<br>".join(
            [
                teacher_text,
                f"<span style='color:{COLORS['curve']}'><b>student</b></span> "
                f"({html.escape(name)}; {n_pairs} pairs, {train_steps} steps): "
                f"W2 {_describe(cur['w2'])}",
            ]
        )

    def train_now(_button: Any = None) -> None:
        opts = _guide_choice(guides)
        name = _label_of(opts)
        if name not in students:
            button.disabled = True
            button.description = "training..."
            try:
                cfg = BezierDistillConfig(
                    order=2, n_pairs=n_pairs, teacher_steps=teacher_steps, pair_seed=seed, **opts
                )
                config = TrainConfig(
                    steps=train_steps,
                    batch_size=batch_size,
                    lr=lr,
                    seed=seed,
                    device="cpu",
                    progress=progress,
                    desc="student",
                )
                with log:
                    log.clear_output()
                    students[name] = _train_student(
                        teacher, source, target, config, cfg, x0[idx], k_paths
                    )
                students[name]["w2"] = few_step_w2(students[name]["model"], x0, ref, steps)
            finally:
                button.disabled = False
                button.description = "train a student on this curve family"
        state["current"] = name
        refresh()

    button.on_click(train_now)
    refresh()
    box = widgets.VBox([button, log, readout, fig])
    return WidgetBundle(
        box=box, figure=fig, controls=controls, readout=readout, state=state, refresh=refresh
    )
