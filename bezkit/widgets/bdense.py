"""The B-DENSE widget of lesson 06: a student's K branches against the teacher's states."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import ipywidgets as widgets
import numpy as np
import torch
from torch import Tensor, nn

from bezkit.arrays import subsample, to_numpy
from bezkit.metrics.branches import branch_errors
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.plot.style import COLORS
from bezkit.solvers.ode import solve_ode
from bezkit.widgets.base import (
    WidgetBundle,
    WidgetView,
    controls_over_figure,
    panel_figure,
    paths_trace,
    points_trace,
    polylines,
    segments,
)
from bezkit.widgets.canvas import Canvas

__all__ = ["bdense_widget"]


@runtime_checkable
class _Branched(Protocol):
    """What the widget uses of a B-DENSE student (:class:`bezkit.models.BranchedVelocity`, or an
    ensemble of them)."""

    num_branches: int
    times: tuple[float, ...]

    def branches(self, x: Tensor, t: Tensor) -> Tensor: ...

    def sample(self, x: Tensor, steps: int = 1) -> Tensor: ...


@torch.no_grad()
def _student_data(
    model: nn.Module,
    key: tuple[int, bool],
    teacher: nn.Module,
    x0: Tensor,
    draw: np.ndarray,
    teacher_steps: int,
    reference: Tensor | None,
) -> dict[str, Any]:
    """The teacher's states at the K branch times (its grid rounded up to a multiple of K), the
    student's branch predictions from ``x0``, the per-branch errors and the W2 of every hop count
    dividing K: what the widget draws for the student ``key = (K, restarts)``."""
    kk, restarts = key
    if not isinstance(model, _Branched) or model.num_branches != kk:
        where = "students" if restarts else "without_restarts"
        raise ValueError(
            f"{where}[{kk}] must be a BranchedVelocity with {kk} branches, got "
            f"{getattr(model, 'num_branches', type(model).__name__)}"
        )
    model.eval()
    steps = kk * math.ceil(teacher_steps / kk)
    traj = solve_ode(teacher, x0, steps=steps, record=True).trajectory
    assert traj is not None  # record=True
    states = torch.stack([traj[steps * j // kk] for j in range(1, kk + 1)])  # (K, n, 2)
    preds = model.branches(x0, torch.zeros(x0.shape[0]))  # (n, K, 2)
    w2: dict[int, float] = {}
    if reference is not None:
        for hops in (h for h in range(1, kk + 1) if kk % h == 0):
            w2[hops] = wasserstein2(model.sample(x0, hops), reference)
    return {
        "states": to_numpy(states),
        "preds": to_numpy(preds),
        "trajectory": to_numpy(traj[:, draw]),
        "errors": branch_errors(model, x0, states),
        "times": tuple(model.times),
        "w2": w2,
    }


def _error_name(key: tuple[int, bool]) -> str:
    """The name of a student's per-branch error trace: ``error K=4`` (with restarts, or as given)
    or ``error K=4, no restarts``."""
    kk, restarts = key
    return f"error K={kk}" if restarts else f"error K={kk}, no restarts"


def _bdense_figure(
    data: Mapping[tuple[int, bool], Mapping[str, Any]], x0: np.ndarray, lim: float | None
) -> Canvas:
    """The branch panel (teacher paths, ``x0``, errors, states, branch outputs; filled by the
    first draw) and the per-branch error of every student against ``t_j`` (one colour per K,
    dashed without restarts)."""
    fig = panel_figure(
        ["branch j against the teacher", "per-branch error"],
        [0.58, 0.42],
        width=960,
        height=470,
        lim=lim,
    )
    left = dict(row=1, col=1)
    fig.add_trace(paths_trace("teacher paths"), **left)
    fig.add_trace(points_trace("x0", x0, color=COLORS["source"], size=5), **left)
    fig.add_scatter(
        name="error", mode="lines", line=dict(color=COLORS["crossing"], width=1.5), **left
    )
    fig.add_scatter(
        name="teacher Z(t_j)",
        mode="markers",
        marker=dict(size=9, symbol="circle-open", color=COLORS["target"], line=dict(width=2)),
        **left,
    )
    fig.add_scatter(
        name="branch j", mode="markers", marker=dict(size=6, color=COLORS["generated"]), **left
    )
    ks = sorted({kk for kk, _ in data})
    for (kk, restarts), d in data.items():
        fig.add_scatter(
            name=_error_name((kk, restarts)),
            mode="lines+markers",
            row=1,
            col=2,
            x=list(d["times"]),
            y=d["errors"].tolist(),
            line=dict(
                color=f"hsl({(ks.index(kk) * 70 + 200) % 360}, 60%, 45%)",
                dash="solid" if restarts else "dash",
            ),
        )
    fig.add_scatter(
        name="current branch",
        mode="markers",
        row=1,
        col=2,
        marker=dict(size=15, color=COLORS["crossing"], symbol="circle-open", line=dict(width=3)),
        showlegend=False,
    )
    fig.update_xaxes(title_text="branch time t_j", range=[0, 1.05], row=1, col=2)
    fig.update_yaxes(title_text="E |branch_j - Z(t_j)|^2", type="log", row=1, col=2)
    return Canvas(fig)


_RESTARTS = (("with restarts", True), ("without restarts", False))


def _hops_text(w2: Mapping[int, float]) -> str:
    return ", ".join(f"{h} hop(s) {v:.3f}" for h, v in w2.items())


class _BdenseView(WidgetView):
    """The B-DENSE widget's controls (``K``, ``j``, ``restarts``) and drawing."""

    def __init__(
        self,
        data: dict[tuple[int, bool], dict[str, Any]],
        x0: np.ndarray,
        draw: np.ndarray,
        k0: int,
        noise_floor: float | None,
        lim: float | None,
    ) -> None:
        super().__init__()
        self.data, self.draw, self.noise_floor = data, draw, noise_floor
        self.figure = _bdense_figure(data, x0[draw], lim)
        self.controls = {
            "K": widgets.SelectionSlider(
                options=sorted({kk for kk, _ in data}),
                value=k0,
                description="branches K",
                continuous_update=True,
            ),
            "j": widgets.IntSlider(
                value=k0, min=1, max=k0, step=1, description="branch j", continuous_update=True
            ),
            "restarts": widgets.ToggleButtons(
                options=_RESTARTS, value=(k0, True) in data, description="trained"
            ),
        }
        self._enable_restarts(k0)
        self.state.update(
            errors={kk: d["errors"] for (kk, r), d in data.items() if r},
            w2={kk: d["w2"] for (kk, r), d in data.items() if r},
            errors_without_restarts={kk: d["errors"] for (kk, r), d in data.items() if not r},
            w2_without_restarts={kk: d["w2"] for (kk, r), d in data.items() if not r},
            K=k0,
        )
        self.controls["K"].observe(self.on_k, names="value")
        self.controls["j"].observe(self.on_change, names="value")
        self.controls["restarts"].observe(self.on_change, names="value")

    def _enable_restarts(self, kk: int) -> None:
        """The ``restarts`` toggle picks between the two students of K when there are two; it
        shows the only one there is, and is disabled, otherwise."""
        both = (kk, True) in self.data and (kk, False) in self.data
        if not both:
            self.controls["restarts"].value = (kk, True) in self.data
        self.controls["restarts"].disabled = not both

    def refresh(self) -> None:
        kk = int(self.controls["K"].value)
        key = (kk, bool(self.controls["restarts"].value))
        j = min(max(1, int(self.controls["j"].value)), kk)
        d = self.data[key]
        z = d["states"][j - 1][self.draw]
        p = d["preds"][self.draw, j - 1]
        tj = d["times"][j - 1]
        px, py = polylines(np.transpose(d["trajectory"], (1, 0, 2)))
        ex, ey = segments(p, z)
        changes: dict[str, dict[str, Any]] = {
            "teacher paths": dict(x=px, y=py),
            "teacher Z(t_j)": dict(x=z[:, 0], y=z[:, 1]),
            "branch j": dict(x=p[:, 0], y=p[:, 1]),
            "error": dict(x=ex, y=ey),
            "current branch": dict(x=[tj], y=[float(d["errors"][j - 1])]),
        }
        for other in self.data:
            changes[_error_name(other)] = dict(opacity=1.0 if other == key else 0.35)
        self.update(changes)
        self.state.update(K=kk, j=j, t_j=tj, restarts=key[1])
        self.readout.value = self._text(key, j, tj)

    def _text(self, key: tuple[int, bool], j: int, tj: float) -> str:
        kk, restarts = key
        d = self.data[key]
        kind = "sparse: the endpoint only" if kk == 1 else f"dense: {kk} states per trajectory"
        trained = "" if kk == 1 else (", with restarts" if restarts else ", without restarts")
        parts = [
            f"<b>K = {kk}</b> ({kind}{trained}); <b>branch j = {j}</b>, t_j = {tj:.3f}: "
            f"mean squared error {float(d['errors'][j - 1]):.4f}"
        ]
        floor = "" if self.noise_floor is None else f" (noise floor {self.noise_floor:.3f})"
        twin = self.data.get((kk, not restarts))
        if d["w2"] and twin is not None and twin["w2"]:
            by_restarts = {restarts: d["w2"], not restarts: twin["w2"]}
            for r, label in ((True, "with restarts"), (False, "without restarts")):
                parts.append(f"W2 of model.sample(x0, hops), {label}: {_hops_text(by_restarts[r])}")
            parts.append(
                f"at {kk} hops: {by_restarts[True][kk]:.3f} with restarts, "
                f"{by_restarts[False][kk]:.3f} without{floor}"
            )
        elif d["w2"]:
            parts.append(f"W2 of model.sample(x0, hops): {_hops_text(d['w2'])}{floor}")
        return "<br>".join(parts)

    def on_k(self, change: Any) -> None:
        """A new K keeps the branch time ``t_j`` as close as it can (and the restarts choice, when
        the new K has that student)."""
        old, new = int(change["old"]), int(change["new"])
        old_key = (old, bool(self.controls["restarts"].value))
        t_old = self.data[old_key]["times"][min(int(self.controls["j"].value), old) - 1]
        times = next(d["times"] for (kk, _), d in self.data.items() if kk == new)
        j_new = min(range(1, new + 1), key=lambda jj: (abs(times[jj - 1] - t_old), jj))
        with self.quietly():
            self.controls["j"].max = new
            self.controls["j"].value = j_new
            self._enable_restarts(new)
        self.refresh()


def bdense_widget(
    students: Mapping[int, nn.Module],
    teacher: nn.Module,
    x0: Tensor,
    *,
    without_restarts: Mapping[int, nn.Module] | None = None,
    reference: Tensor | None = None,
    noise_floor: float | None = None,
    teacher_steps: int = 100,
    max_points: int = 25,
    seed: int = 0,
    K: int | None = None,
    lim: float | None = None,
) -> WidgetBundle:
    """A slider over the number of branches ``K`` of B-DENSE students and over their branch ``j``,
    and a toggle between the students of one K trained with and without restarts.

    ``students`` maps ``K`` to a :class:`bezkit.models.BranchedVelocity` with K branches (K = 1 is
    plain one-step distillation: sparse supervision, the endpoint only), trained with restarts;
    ``without_restarts`` maps ``K`` to students trained from ``s = 0`` only (``restarts=False``),
    the contrast of few-step sampling: hopping ``0 -> t_{K/h} -> ... -> 1`` feeds a student
    inputs at ``t > 0``, which only a student trained with restarts has seen. For every student
    the teacher's states ``Z_{t_j}`` at the branch times are computed from ``x0`` (its grid
    rounded up to a multiple of K, as in training) together with the per-branch mean squared
    error ``E ||branch_j(x0, 0) - Z_{t_j}||^2`` (:func:`bezkit.plot.branch_errors`) and, when
    ``reference`` is given, the W2 of ``model.sample(x0, hops)`` for every ``hops`` dividing K
    (the readout sets the two students of one K side by side).

    Controls: ``K`` (a ``SelectionSlider`` over the students' K), ``j`` (``IntSlider`` 1..K; on a
    change of K it keeps the branch time ``t_j`` as close as it can) and ``restarts``
    (``ToggleButtons``, ``True`` / ``False``; enabled where K has both students). Traces:
    ``teacher paths``, ``x0``, ``teacher Z(t_j)``, ``branch j``, ``error``, one ``error K=<K>``
    per student (``error K=<K>, no restarts`` for the others, dashed; against ``t_j``) and
    ``current branch``. ``state`` holds ``K``, ``j``, ``restarts``, ``errors`` (``{K: (K,)}``)
    and ``w2`` (``{K: {hops: W2}}``) of ``students``, and ``errors_without_restarts`` and
    ``w2_without_restarts`` of the others.
    """
    others = dict(without_restarts or {})
    if not students and not others:
        raise ValueError("bdense_widget needs at least one student")
    x0 = x0.float()
    teacher.eval()
    draw = subsample(x0.shape[0], max_points, seed)
    models = {(kk, True): m for kk, m in students.items()}
    models.update({(kk, False): m for kk, m in others.items()})
    data = {
        key: _student_data(models[key], key, teacher, x0, draw, teacher_steps, reference)
        for key in sorted(models, key=lambda key: (key[0], not key[1]))
    }
    ks = sorted({kk for kk, _ in data})
    k0 = ks[-1] if K is None else min(ks, key=lambda v: (abs(v - K), v))
    view = _BdenseView(data, to_numpy(x0), draw, k0, noise_floor, lim)
    view.refresh()
    return controls_over_figure(view)
