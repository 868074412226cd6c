"""Static figures (matplotlib) for the notebooks and the experiment report.

Every function draws into the ``ax`` it is given, or into a new figure when ``ax`` is None, and
returns the :class:`~matplotlib.axes.Axes` it drew on (``ax.figure`` is the figure). Nothing here
chooses a matplotlib backend: in Jupyter the inline backend shows the figure, in tests and scripts
set ``MPLBACKEND=Agg`` (or call ``matplotlib.use("Agg")`` yourself) before the first figure.

Inputs may be torch tensors, numpy arrays or nested lists; subsampling is seeded, so the same call
draws the same figure. Colours are shared with :mod:`bezkit.widgets` through :data:`COLORS`:
source samples blue, targets orange, generated samples green, crossing segments red.

The geometry of a single Bezier curve (:func:`bezier_geometry`) lives here too, because both
:func:`plot_bezier` and the interactive :func:`bezkit.widgets.bezier_widget` draw it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from bezkit.metrics.crossings import coupling_crossings, segments_cross
from bezkit.paths.bezier import BezierPath
from bezkit.paths.targets import regression_target

__all__ = [
    "COLORS",
    "BezierGeometry",
    "SegmentCrossings",
    "bezier_geometry",
    "crossing_mask",
    "degree_elevate",
    "plot_bezier",
    "plot_coupling_segments",
    "plot_loss",
    "plot_metric_vs_k",
    "plot_samples",
    "plot_trajectories",
    "plot_w2_vs_steps",
    "segment_crossings",
    "subsample",
    "to_numpy",
]

#: One colour per role, used by every figure (static and interactive).
COLORS: dict[str, str] = {
    "source": "#1f77b4",  # X0 ~ pi0
    "target": "#ff7f0e",  # X1 ~ pi1 (real data)
    "generated": "#2ca02c",  # Z1, the flow's samples
    "trajectory": "#7f7f7f",
    "segment": "#9e9e9e",  # straight segments X0 -> X1 that cross nothing
    "crossing": "#d62728",  # segments that cross another one
    "curve": "#9467bd",  # a Bezier curve B(t)
    "control": "#555555",  # its control polygon
    "tangent": "#17becf",  # B'(t)
    "endpoint": "#d62728",  # (X1 - B(t)) / (1 - t)
    "chord": "#bcbd22",  # the straight line X0 -> X1
    "floor": "#555555",  # W2 noise floor
}


def to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor, array or nested list."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _points(x: Any, name: str) -> np.ndarray:
    arr = to_numpy(x)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be 2D points of shape (n, 2), got {arr.shape}")
    return arr


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = (4.5, 4.5)) -> Axes:
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def subsample(n: int, m: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(m, n)`` of ``n`` items, drawn by a seeded generator (all if m is
    None)."""
    if m is None or m >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=m, replace=False))


def _segment_pair(x0: Any, x1: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(_points(x0, "x0"))
    b = torch.as_tensor(_points(x1, "x1"))
    if a.shape != b.shape:
        raise ValueError(
            f"x0 and x1 must have the same shape, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    return a, b


def crossing_mask(x0: Any, x1: Any) -> np.ndarray:
    """For each straight segment ``x0[i] -> x1[i]``: does it properly cross any other one?

    The same orientation test as :func:`bezkit.metrics.coupling_crossings`, kept per segment (an
    ``(m, m)`` table, so use it on the few hundred segments a figure shows).
    """
    a, b = _segment_pair(x0, x1)
    table = segments_cross(a[:, None], b[:, None], a[None], b[None])
    return table.any(dim=1).numpy()


@dataclass(frozen=True)
class SegmentCrossings:
    """Every crossing pair ``i < j`` of straight segments ``X0 -> X1`` and *when* each passes it.

    Segment ``i`` is the linear path ``(1 - t) X0_i + t X1_i``; it reaches the crossing point at
    ``t_i``, segment ``j`` at ``t_j``. Two linear paths only compete for the velocity at a point
    when they are there at the same time, so ``|t_i - t_j|`` tells a harmful crossing (small) from
    a harmless one (large). Arrays have one entry per crossing pair.
    """

    i: np.ndarray
    j: np.ndarray
    point: np.ndarray  # (pairs, 2)
    t_i: np.ndarray
    t_j: np.ndarray

    @property
    def time_gap(self) -> np.ndarray:
        return np.abs(self.t_i - self.t_j)

    def __len__(self) -> int:
        return int(self.i.shape[0])


def segment_crossings(x0: Any, x1: Any) -> SegmentCrossings:
    """The crossing pairs of the segments ``x0[k] -> x1[k]`` with their crossing times.

    Solving ``X0_i + t_i (X1_i - X0_i) = X0_j + t_j (X1_j - X0_j)`` for the pairs that
    :func:`bezkit.metrics.segments_cross` finds. Under the exact OT coupling for the squared cost
    no two segments are at the same point at the same time (``t_i != t_j``), although nearly
    parallel ones may still cross at different times.
    """
    a, b = _segment_pair(x0, x1)
    hit = torch.triu(segments_cross(a[:, None], b[:, None], a[None], b[None]), diagonal=1)
    i, j = (v.numpy() for v in torch.nonzero(hit, as_tuple=True))
    a, b = a.numpy(), b.numpy()
    r, w, d = b[i] - a[i], b[j] - a[j], a[j] - a[i]

    def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    denom = cross(r, w)  # never 0 for a proper crossing
    t_i, t_j = cross(d, w) / denom, cross(d, r) / denom
    return SegmentCrossings(i=i, j=j, point=a[i] + t_i[:, None] * r, t_i=t_i, t_j=t_j)


# -- Bezier geometry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BezierGeometry:
    """Everything a figure of one Bezier curve at time ``t`` shows (numpy, float64).

    Attributes:
        control_points: ``(order+1, 2)``, ``P_0 = X0 .. P_n = X1``.
        curve: ``(n_points, 2)`` samples of ``B`` on a uniform grid of [0, 1].
        t: the time of the marked point.
        point: ``B(t)``.
        tangent: ``B'(t)``, the velocity the ``tangent`` target regresses.
        endpoint_velocity: ``(X1 - B(t)) / (1 - t)`` (t clipped to ``t_max``), the ``endpoint``
            target.
    """

    control_points: np.ndarray
    curve: np.ndarray
    t: float
    point: np.ndarray
    tangent: np.ndarray
    endpoint_velocity: np.ndarray

    @property
    def order(self) -> int:
        return self.control_points.shape[0] - 1


def bezier_geometry(
    control_points: Any, t: float = 0.5, *, n_points: int = 201, t_max: float = 0.999
) -> BezierGeometry:
    """The curve, the point, the tangent and the endpoint target of one 2D Bezier curve.

    Computed with :class:`bezkit.paths.BezierPath` and :func:`bezkit.paths.regression_target`,
    the same code that builds training targets. ``t`` is clipped into [0, 1].
    """
    cp = _points(control_points, "control_points")
    if cp.shape[0] < 2:
        raise ValueError("a Bezier curve needs at least 2 control points (X0 and X1)")
    path = BezierPath(cp.shape[0] - 1)
    pts = torch.as_tensor(cp)
    x0, x1, guides = pts[:1], pts[-1:], tuple(p[None] for p in pts[1:-1])
    grid = torch.linspace(0.0, 1.0, max(2, int(n_points)), dtype=torch.float64)
    m = grid.shape[0]
    curve = path.point(
        x0.expand(m, 2), x1.expand(m, 2), grid, tuple(g.expand(m, 2) for g in guides)
    )
    t = float(min(1.0, max(0.0, float(t))))
    tt = torch.tensor([t], dtype=torch.float64)
    sample = path.sample(x0, x1, tt, guides)
    endpoint = regression_target(sample, "endpoint", t_max=t_max)
    return BezierGeometry(
        control_points=cp,
        curve=curve.numpy(),
        t=t,
        point=sample.x_t[0].numpy(),
        tangent=sample.dx_t[0].numpy(),
        endpoint_velocity=endpoint[0].numpy(),
    )


def degree_elevate(control_points: Any) -> np.ndarray:
    """The ``order + 2`` control points of the *same* curve written with one degree more:

    ``Q_0 = P_0``, ``Q_i = i/(n+1) P_{i-1} + (1 - i/(n+1)) P_i`` (i = 1..n), ``Q_{n+1} = P_n``.
    Elevating the line ``[X0, X1]`` gives the quadratic with the midpoint guide ``(X0 + X1) / 2``.
    """
    p = to_numpy(control_points)
    n = p.shape[0] - 1
    q = [p[0]]
    for i in range(1, n + 1):
        a = i / (n + 1)
        q.append(a * p[i - 1] + (1 - a) * p[i])
    q.append(p[n])
    return np.stack(q)


# -- samples, trajectories, couplings -------------------------------------------------------------


def plot_samples(
    samples: Any,
    *,
    ax: Axes | None = None,
    label: str | None = None,
    color: str | None = None,
    s: float = 3.0,
    alpha: float = 0.5,
    max_points: int | None = 5000,
    seed: int = 0,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """Scatter 2D samples. ``samples`` is one ``(n, 2)`` set, or a mapping ``{label: (n, 2)}``
    (the keys ``source``, ``target`` and ``generated`` get their :data:`COLORS`)."""
    ax = _new_axes(ax)
    if isinstance(samples, Mapping):
        sets = [(str(k), v, COLORS.get(str(k))) for k, v in samples.items()]
    else:
        sets = [(label, samples, color)]
    for i, (name, pts, c) in enumerate(sets):
        arr = _points(pts, f"samples {name!r}" if name else "samples")
        arr = arr[subsample(arr.shape[0], max_points, seed)]
        ax.scatter(
            arr[:, 0], arr[:, 1], s=s, alpha=alpha, color=c or f"C{i}", label=name, linewidths=0
        )
    if any(name for name, _, _ in sets):
        ax.legend(loc="upper right", markerscale=3, fontsize=8)
    _finish(ax, title, lim)
    return ax


def _finish(ax: Axes, title: str | None, lim: float | None) -> None:
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)


def plot_trajectories(
    trajectory: Any,
    *,
    ax: Axes | None = None,
    max_paths: int | None = 200,
    seed: int = 0,
    color: str | None = None,
    alpha: float = 0.35,
    linewidth: float = 0.8,
    show_ends: bool = True,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """Draw ``max_paths`` of the polylines in ``trajectory`` of shape ``(T+1, n, 2)`` (a solver's
    recorded states), start points in the source colour and end points in the generated one."""
    traj = to_numpy(trajectory)
    if traj.ndim != 3 or traj.shape[2] != 2 or traj.shape[0] < 2:
        raise ValueError(f"trajectory must have shape (T+1, n, 2) with T >= 1, got {traj.shape}")
    ax = _new_axes(ax)
    idx = subsample(traj.shape[1], max_paths, seed)
    paths = np.transpose(traj[:, idx], (1, 0, 2))  # (m, T+1, 2)
    lines = LineCollection(
        list(paths),
        colors=color or COLORS["trajectory"],
        alpha=alpha,
        linewidths=linewidth,
        label="trajectories",
    )
    ax.add_collection(lines)
    if show_ends:
        ax.scatter(
            paths[:, 0, 0],
            paths[:, 0, 1],
            s=6,
            color=COLORS["source"],
            label="$Z_0$",
            zorder=3,
            linewidths=0,
        )
        ax.scatter(
            paths[:, -1, 0],
            paths[:, -1, 1],
            s=6,
            color=COLORS["generated"],
            label="$Z_1$",
            zorder=3,
            linewidths=0,
        )
        ax.legend(loc="upper right", markerscale=2, fontsize=8)
    ax.autoscale_view()
    _finish(ax, title, lim)
    return ax


def plot_coupling_segments(
    x0: Any,
    x1: Any,
    *,
    ax: Axes | None = None,
    max_pairs: int | None = 100,
    seed: int = 0,
    highlight_crossings: bool = True,
    same_time: float | None = 0.1,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """Draw the straight segments ``X0_i -> X1_i`` of a coupling (``max_pairs`` of them, seeded).

    Segments that cross another drawn segment are red, the others grey. With ``same_time``, the
    crossing points that both linear paths reach at nearly the same time (``|t_i - t_j| <
    same_time``, see :func:`segment_crossings`) are marked with a black cross: there two training
    pairs ask for different velocities at the same ``(x, t)``. The title counts the crossing pairs
    (the count of :func:`bezkit.metrics.coupling_crossings` on the drawn segments).
    """
    a, b = _points(x0, "x0"), _points(x1, "x1")
    if a.shape != b.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {a.shape} and {b.shape}")
    ax = _new_axes(ax)
    idx = subsample(a.shape[0], max_pairs, seed)
    a, b = a[idx], b[idx]
    segs = np.stack([a, b], axis=1)  # (m, 2, 2)
    mask = crossing_mask(a, b) if highlight_crossings else np.zeros(len(a), dtype=bool)
    for sel, color, alpha, name in (
        (~mask, COLORS["segment"], 0.8, "no crossing"),
        (mask, COLORS["crossing"], 0.6, "crosses another"),
    ):
        if sel.any():
            ax.add_collection(
                LineCollection(
                    list(segs[sel]), colors=color, linewidths=0.8, alpha=alpha, label=name
                )
            )
    ax.scatter(a[:, 0], a[:, 1], s=8, color=COLORS["source"], label="$X_0$", zorder=3, linewidths=0)
    ax.scatter(b[:, 0], b[:, 1], s=8, color=COLORS["target"], label="$X_1$", zorder=3, linewidths=0)
    n_same = None
    if highlight_crossings and same_time is not None:
        cr = segment_crossings(a, b)
        near = cr.point[cr.time_gap < same_time]
        n_same = len(near)
        if n_same:
            ax.scatter(
                near[:, 0],
                near[:, 1],
                marker="x",
                s=25,
                color="black",
                zorder=4,
                linewidths=1.2,
                label=f"same time ($|t_i - t_j| < {same_time:g}$)",
            )
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    ax.autoscale_view()
    if title is None and highlight_crossings:
        pairs = coupling_crossings(torch.as_tensor(a), torch.as_tensor(b)).pairs
        title = f"{pairs} crossing pairs among {len(a)} segments"
        if n_same is not None:
            title += f"\n{n_same} at nearly the same time"
    _finish(ax, title, lim)
    return ax


def plot_bezier(
    control_points: Any,
    *,
    t: float | None = 0.5,
    ax: Axes | None = None,
    show_polygon: bool = True,
    show_chord: bool = False,
    show_tangent: bool = True,
    show_endpoint_target: bool = True,
    label: str | None = None,
    color: str | None = None,
    title: str | None = None,
) -> Axes:
    """Draw one 2D Bezier curve from its ``(order+1, 2)`` control points ``[X0, G.., X1]``.

    With ``t`` given, mark ``B(t)`` and draw two arrows from it, each one Euler step of the
    remaining time ``1 - t``: the tangent ``B'(t)`` (where following the curve's velocity would
    go) and the endpoint target ``(X1 - B(t)) / (1 - t)`` (which lands exactly on ``X1``).
    """
    geo = bezier_geometry(control_points, 0.0 if t is None else t)
    ax = _new_axes(ax)
    cp = geo.control_points
    if show_polygon:
        ax.plot(
            cp[:, 0],
            cp[:, 1],
            "--o",
            color=COLORS["control"],
            lw=0.8,
            ms=4,
            label="control polygon",
        )
    if show_chord:
        ax.plot(
            cp[[0, -1], 0],
            cp[[0, -1], 1],
            ":",
            color=COLORS["chord"],
            lw=1.5,
            label="chord $X_0 \\to X_1$",
        )
    ax.plot(
        geo.curve[:, 0],
        geo.curve[:, 1],
        color=color or COLORS["curve"],
        lw=2,
        label=label or f"$B(t)$, order {geo.order}",
    )
    ax.scatter(*cp[0], color=COLORS["source"], zorder=4, s=30)
    ax.scatter(*cp[-1], color=COLORS["target"], zorder=4, s=30)
    if t is not None:
        p, rem = geo.point, 1.0 - geo.t
        ax.scatter(*p, color="black", zorder=5, s=25, label=f"$B({geo.t:.2f})$")
        arrows = []
        if show_tangent:
            arrows.append((geo.tangent, COLORS["tangent"], "$(1-t)\\,B'(t)$"))
        if show_endpoint_target:
            arrows.append(
                (geo.endpoint_velocity, COLORS["endpoint"], "$(1-t)\\,(X_1 - B(t))/(1-t)$")
            )
        for vel, c, name in arrows:
            d = rem * vel
            ax.annotate(
                "",
                xy=(p[0] + d[0], p[1] + d[1]),
                xytext=(p[0], p[1]),
                arrowprops=dict(arrowstyle="->", color=c, lw=1.8),
                zorder=6,
            )
            ax.plot([], [], color=c, lw=1.8, label=name)  # legend entry for the arrow
            ax.update_datalim([p + d])  # annotations do not widen the axes by themselves
        ax.autoscale_view()
    ax.legend(loc="best", fontsize=8)
    _finish(ax, title, None)
    return ax


# -- numbers ---------------------------------------------------------------------------------------


def _series(values: Mapping[Any, float] | Sequence[float], start: int = 1) -> tuple[list, list]:
    """``{x: y}`` (keys may be numeric strings, as in JSON), or ``[y, ...]`` at x = start, ..."""
    if isinstance(values, Mapping):
        items = sorted((float(k), float(v)) for k, v in values.items())
        xs = [int(x) if float(x).is_integer() else x for x, _ in items]
        return xs, [y for _, y in items]
    ys = [float(v) for v in values]
    return list(range(start, start + len(ys))), ys


def plot_metric_vs_k(
    results: Mapping[str, Mapping[Any, float] | Sequence[float]],
    *,
    metric: str = "W2",
    ax: Axes | None = None,
    logy: bool = False,
    reference: float | None = None,
    reference_label: str = "noise floor",
    title: str | None = None,
) -> Axes:
    """A metric against the reflow round ``k``, one line per method.

    ``results`` maps a method's name to ``{k: value}`` or to a list of values for k = 1, 2, ...
    ``reference`` draws a dashed horizontal line (e.g. the W2 noise floor).
    """
    ax = _new_axes(ax, (5.0, 3.5))
    for i, (name, vals) in enumerate(results.items()):
        xs, ys = _series(vals)
        ax.plot(xs, ys, "-o", color=f"C{i}", label=name, ms=4)
    if reference is not None:
        ax.axhline(reference, ls="--", color=COLORS["floor"], lw=1, label=reference_label)
    ax.set_xlabel("reflow round $k$")
    ax.set_ylabel(metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if logy:
        ax.set_yscale("log")
    if results or reference is not None:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_w2_vs_steps(
    results: Mapping[str, Mapping[Any, float]] | Mapping[Any, float],
    *,
    noise_floor: float | None = None,
    ax: Axes | None = None,
    xlabel: str = "Euler steps (NFE)",
    logx: bool = True,
    title: str | None = None,
) -> Axes:
    """W2 against the number of sampling steps, one line per model, with the noise floor.

    ``results`` is ``{label: {steps: w2}}`` (e.g. ``evaluate_flow(...)["w2"]``, whose keys are
    strings) or a single ``{steps: w2}``.
    """
    ax = _new_axes(ax, (5.0, 3.5))
    if results and not isinstance(next(iter(results.values())), Mapping):
        results = {"W2": results}
    for i, (name, vals) in enumerate(results.items()):
        xs, ys = _series(vals)
        ax.plot(xs, ys, "-o", color=f"C{i}", label=name, ms=4)
    if noise_floor is not None:
        ax.axhline(noise_floor, ls="--", color=COLORS["floor"], lw=1, label="noise floor")
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("$W_2$ to held-out data")
    if results or noise_floor is not None:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_loss(
    losses: Sequence[float] | Mapping[str, Sequence[float]],
    *,
    ax: Axes | None = None,
    smooth: int = 50,
    logy: bool = True,
    title: str | None = None,
) -> Axes:
    """Training loss per step (faint) and its moving average over ``smooth`` steps, one colour per
    run (``losses`` is one list or ``{label: list}``)."""
    ax = _new_axes(ax, (5.0, 3.0))
    runs = losses.items() if isinstance(losses, Mapping) else [("loss", losses)]
    for i, (name, vals) in enumerate(runs):
        y = np.asarray(list(vals), dtype=np.float64)
        if y.size == 0:
            continue
        x = np.arange(1, y.size + 1)
        ax.plot(x, y, color=f"C{i}", alpha=0.25, lw=0.7)
        w = max(1, min(int(smooth), y.size))
        avg = np.convolve(y, np.ones(w) / w, mode="valid")
        ax.plot(x[w - 1 :], avg, color=f"C{i}", lw=1.5, label=f"{name} (mean of {w})")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    if ax.lines:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


# -- lessons 04 to 06: Bezier distillation pairs, targets, branches, error accumulation ------------
#
# Appended for the lessons (see bezkit.lessons); the functions above are unchanged.

__all__ += [
    "branch_errors",
    "plot_bezier_pairs",
    "plot_branches",
    "plot_error_accumulation",
    "plot_targets",
]


def _pair_parts(pairs: Any) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(x0, x1, guides)`` as float64 tensors from a :class:`~bezkit.couplings.Pairs`, a
    :class:`~bezkit.couplings.PairPool` or a tuple ``(x0, x1, guide, ...)``."""
    pairs = getattr(pairs, "pairs", pairs)  # a PairPool holds its Pairs
    if hasattr(pairs, "x0") and hasattr(pairs, "x1"):
        parts = (pairs.x0, pairs.x1, *getattr(pairs, "guides", ()))
    else:
        parts = tuple(pairs)
    if len(parts) < 2:
        raise ValueError("pairs need at least x0 and x1")
    x0 = torch.as_tensor(_points(parts[0], "x0"))
    x1 = torch.as_tensor(_points(parts[1], "x1"))
    guides = tuple(torch.as_tensor(_points(g, f"guide {i + 1}")) for i, g in enumerate(parts[2:]))
    for name, arr in (("x1", x1), *((f"guide {i + 1}", g) for i, g in enumerate(guides))):
        if arr.shape != x0.shape:
            raise ValueError(f"{name} has shape {tuple(arr.shape)}, x0 has {tuple(x0.shape)}")
    return x0, x1, guides


def _path_for(order: int | None, guides: tuple[torch.Tensor, ...]) -> BezierPath:
    order = len(guides) + 1 if order is None else int(order)
    if order - 1 != len(guides):
        raise ValueError(
            f"a Bezier curve of order {order} needs {order - 1} guide(s), got {len(guides)}"
        )
    return BezierPath(order)


def plot_bezier_pairs(
    pairs: Any,
    order: int | None = None,
    *,
    ax: Axes | None = None,
    max_pairs: int | None = 30,
    seed: int = 0,
    show_polygon: bool = True,
    show_guides: bool = True,
    n_points: int = 60,
    color: str | None = None,
    label: str | None = None,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """The Bezier curves of many training pairs at once (Bezier distillation's paths).

    ``pairs`` holds ``x0``, ``x1`` and ``order - 1`` guides (a ``Pairs``, a ``PairPool`` such as
    :func:`bezkit.methods.make_bezier_pairs`'s, or a tuple ``(x0, x1, g1, ...)``); ``max_pairs`` of
    them (seeded) are drawn: the curve, its control polygon (dashed, faint), the guides (grey
    squares), ``X0`` in the source colour and ``X1`` in the target colour. ``order`` defaults to
    the number of guides + 1 (order 1 draws the straight segments)."""
    x0, x1, guides = _pair_parts(pairs)
    path = _path_for(order, guides)
    ax = _new_axes(ax)
    idx = torch.as_tensor(subsample(x0.shape[0], max_pairs, seed))
    x0, x1 = x0[idx], x1[idx]
    guides = tuple(g[idx] for g in guides)
    m, grid = x0.shape[0], torch.linspace(0.0, 1.0, max(2, int(n_points)), dtype=torch.float64)
    curves = torch.stack(
        [path.point(x0, x1, torch.full((m,), float(s), dtype=torch.float64), guides) for s in grid],
        dim=1,
    ).numpy()  # (m, n_points, 2)
    if show_polygon and guides:
        poly = torch.stack([x0, *guides, x1], dim=1).numpy()
        ax.add_collection(
            LineCollection(
                list(poly),
                colors=COLORS["control"],
                linewidths=0.6,
                alpha=0.35,
                linestyles="--",
                label="control polygons",
            )
        )
    ax.add_collection(
        LineCollection(
            list(curves),
            colors=color or COLORS["curve"],
            linewidths=1.2,
            alpha=0.8,
            label=label or f"Bezier curves, order {path.order}",
        )
    )
    if show_guides:
        for i, g in enumerate(guides):
            gn = g.numpy()
            ax.scatter(
                gn[:, 0],
                gn[:, 1],
                s=14,
                marker="s",
                color=COLORS["control"],
                alpha=0.7,
                linewidths=0,
                zorder=3,
                label="guides" if i == 0 else None,
            )
    a, b = x0.numpy(), x1.numpy()
    ax.scatter(
        a[:, 0], a[:, 1], s=10, color=COLORS["source"], label="$X_0$", zorder=4, linewidths=0
    )
    ax.scatter(
        b[:, 0], b[:, 1], s=10, color=COLORS["target"], label="$X_1$", zorder=4, linewidths=0
    )
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    ax.autoscale_view()
    _finish(ax, title, lim)
    return ax


def plot_targets(
    pairs: Any,
    order: int | None = None,
    t: float = 0.5,
    target: str = "endpoint",
    *,
    ax: Axes | None = None,
    max_pairs: int | None = 30,
    seed: int = 0,
    t_max: float = 0.999,
    show_curves: bool = True,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """What a student regresses at time ``t`` on many Bezier curves.

    For ``max_pairs`` pairs (seeded): the point ``B(t)`` and an arrow of one Euler step of the
    remaining time, ``(1 - t) v``, for ``v`` the ``tangent`` ``B'(t)``, the ``endpoint`` target
    ``(X1 - B(t)) / (1 - t)`` (every arrow ends on its ``X1``), or ``both``. Computed with
    :func:`bezkit.paths.regression_target`, the code that trains the students."""
    if target not in ("tangent", "endpoint", "both"):
        raise ValueError(f"target must be 'tangent', 'endpoint' or 'both', got {target!r}")
    x0, x1, guides = _pair_parts(pairs)
    path = _path_for(order, guides)
    ax = _new_axes(ax)
    idx = torch.as_tensor(subsample(x0.shape[0], max_pairs, seed))
    x0, x1 = x0[idx], x1[idx]
    guides = tuple(g[idx] for g in guides)
    t = float(min(1.0, max(0.0, float(t))))
    if show_curves:
        plot_bezier_pairs(
            (x0, x1, *guides),
            path.order,
            ax=ax,
            max_pairs=None,
            show_polygon=False,
            show_guides=False,
            label="curves",
        )
        for coll in ax.collections[-1:]:
            coll.set_alpha(0.3)
    sample = path.sample(x0, x1, torch.full((x0.shape[0],), t, dtype=torch.float64), guides)
    p = sample.x_t.numpy()
    rem = 1.0 - t
    kinds = ("tangent", "endpoint") if target == "both" else (target,)
    for kind in kinds:
        v = regression_target(sample, kind, t_max=t_max).numpy() * rem
        ax.quiver(
            p[:, 0],
            p[:, 1],
            v[:, 0],
            v[:, 1],
            angles="xy",
            scale_units="xy",
            scale=1.0,
            color=COLORS[kind],
            width=0.005,
            alpha=0.9,
            zorder=5,
            label=f"$(1-t)\\times$ {kind} target",
        )
        ax.update_datalim(p + v)
    ax.scatter(p[:, 0], p[:, 1], s=12, color="black", zorder=6, label=f"$B({t:.2f})$", linewidths=0)
    handles, labels = ax.get_legend_handles_labels()
    keep = [i for i, name in enumerate(labels) if name not in ("$X_0$", "$X_1$")]
    ax.legend(
        [handles[i] for i in keep],
        [labels[i] for i in keep],
        loc="upper right",
        fontsize=7,
        framealpha=0.8,
    )
    ax.autoscale_view()
    _finish(ax, title, lim)
    return ax


def _teacher_stack(teacher_states: Any, k: int | None) -> np.ndarray:
    """Teacher states at ``t_1..t_K`` as ``(K, n, 2)``; a leading ``Z_0`` (K + 1 states) is
    dropped when ``k`` says there are K branches."""
    if isinstance(teacher_states, torch.Tensor | np.ndarray):
        arr = to_numpy(teacher_states)
    else:
        arr = np.stack([to_numpy(s) for s in teacher_states])
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise ValueError(f"teacher states must have shape (K, n, 2), got {arr.shape}")
    if k is not None and arr.shape[0] == k + 1:
        arr = arr[1:]
    if k is not None and arr.shape[0] != k:
        raise ValueError(f"a model with {k} branches needs {k} teacher states, got {arr.shape[0]}")
    return arr


@torch.no_grad()
def branch_errors(model: Any, x0: Any, teacher_states: Any, s: float = 0.0) -> np.ndarray:
    """Per-branch mean squared error ``E ||branch_j(x0, s) - Z_{t_j}||^2``, shape ``(K,)``, of a
    B-DENSE student (:class:`bezkit.models.BranchedVelocity`) against the teacher's states at the
    branch times (``(K, n, 2)``, or ``K + 1`` states starting with ``Z_0``)."""
    x = torch.as_tensor(to_numpy(x0), dtype=torch.float32)
    states = _teacher_stack(teacher_states, model.num_branches)
    model.eval()
    out = model.branches(x, torch.full((x.shape[0],), float(s))).double().numpy()  # (n, K, 2)
    diff = out - np.transpose(states, (1, 0, 2))
    return (diff**2).sum(axis=-1).mean(axis=0)


@torch.no_grad()
def plot_branches(
    model: Any,
    x0: Any,
    teacher_states: Any = None,
    *,
    ax: Axes | None = None,
    max_points: int | None = 20,
    seed: int = 0,
    s: float = 0.0,
    title: str | None = None,
    lim: float | None = None,
) -> Axes:
    """A B-DENSE student's K branch outputs from ``x0`` against the teacher's states.

    For ``max_points`` starting points (seeded): the teacher's polyline ``Z_0, Z_{t_1}, ..,
    Z_{t_K}`` (grey), its states at the branch times (hollow circles, one colour per branch), the
    student's ``branch_j(x0, s)`` (filled, same colour) and a red segment for each branch's error.
    ``model`` may be None (the teacher alone) and ``teacher_states`` None (the branches alone).
    """
    ax = _new_axes(ax)
    x = to_numpy(x0)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x0 must be 2D points of shape (n, 2), got {x.shape}")
    idx = subsample(x.shape[0], max_points, seed)
    k = None if model is None else int(model.num_branches)
    states = None if teacher_states is None else _teacher_stack(teacher_states, k)[:, idx]
    if states is not None and k is None:
        k = states.shape[0]
    if k is None:
        raise ValueError("give a model, teacher states, or both")
    times = getattr(model, "times", None) or tuple(j / k for j in range(1, k + 1))
    cmap = plt.get_cmap("viridis")
    colors = [cmap(0.15 + 0.75 * j / max(1, k - 1)) for j in range(k)]
    start = x[idx]
    if states is not None:
        lines = np.concatenate([start[None], states], axis=0).transpose(1, 0, 2)
        ax.add_collection(
            LineCollection(
                list(lines), colors=COLORS["trajectory"], linewidths=0.8, alpha=0.5, label="teacher"
            )
        )
    preds = None
    if model is not None:
        xt = torch.as_tensor(start, dtype=torch.float32)
        preds = model.branches(xt, torch.full((xt.shape[0],), float(s))).double().numpy()
    for j in range(k):
        name = f"$t_{{{j + 1}}} = {times[j]:.2f}$"
        if states is not None:
            ax.scatter(
                states[j, :, 0],
                states[j, :, 1],
                s=28,
                facecolors="none",
                edgecolors=[colors[j]],
                linewidths=1.2,
                zorder=4,
            )
        if preds is not None:
            ax.scatter(
                preds[:, j, 0],
                preds[:, j, 1],
                s=14,
                color=colors[j],
                zorder=5,
                linewidths=0,
                label=f"branch {j + 1}, {name}",
            )
            if states is not None:
                segs = np.stack([preds[:, j], states[j]], axis=1)
                ax.add_collection(
                    LineCollection(list(segs), colors=COLORS["crossing"], linewidths=0.8, alpha=0.7)
                )
        elif states is not None:
            ax.scatter([], [], s=28, facecolors="none", edgecolors=[colors[j]], label=name)
    ax.scatter(
        start[:, 0],
        start[:, 1],
        s=14,
        color=COLORS["source"],
        zorder=6,
        linewidths=0,
        label="$x_0$",
    )
    if states is not None and preds is not None:
        ax.scatter(
            [], [], s=28, facecolors="none", edgecolors="black", label="teacher $Z_{t_j}$ (hollow)"
        )
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    ax.autoscale_view()
    _finish(ax, title, lim)
    return ax


def plot_error_accumulation(
    results: Any,
    metric: str = "w2",
    steps: int | str | None = 1,
    *,
    methods: Sequence[str] | None = None,
    ax: Axes | None = None,
    baselines: bool = True,
    noise_floor: bool = True,
    logy: bool = False,
    title: str | None = None,
    legend: str | None = "best",
) -> Axes:
    """One metric of the 2D experiment against the reflow round ``k``, one line per method, with
    the OT baselines (trained once) as dotted horizontal lines and, for ``w2``, the noise floor
    (dashed, with its spread as a band when known).

    ``results`` is one experiment of ``results.json`` (or a results dict holding one); the series
    come from :func:`bezkit.lessons.metric_by_k` and :func:`bezkit.lessons.baseline_values`.
    ``legend``: a matplotlib ``loc``, ``"outside"`` (right of the axes) or None (no legend)."""
    from bezkit.lessons import baseline_values, metric_by_k, select_experiment

    exp = select_experiment(results)
    series = metric_by_k(exp, metric, steps, methods=methods)
    floor = exp.get("noise_floor") if noise_floor and metric == "w2" else None
    label = metric.replace("_", " ")
    if metric in ("w2", "nfe"):
        label = f"{metric.upper()} at {steps} step(s)"
    if metric in ("w2", "nfe") and steps is None:
        label = f"{metric.upper()} at the most steps"
    ax = plot_metric_vs_k(series, metric=label, ax=ax, logy=logy, reference=floor, title=title)
    spread = exp.get("noise_floor_std")
    if floor is not None and spread:
        ax.axhspan(floor - spread, floor + spread, color=COLORS["floor"], alpha=0.12, lw=0)
    if baselines:
        styles = {
            "otcfm": ("OT-CFM (minibatch OT)", "#8c564b"),
            "full-ot": ("full OT map", "#e377c2"),
        }
        for name, value in baseline_values(exp, metric, steps).items():
            text, c = styles.get(name, (name, "#333333"))
            ax.axhline(value, ls=":", lw=1.6, color=c, label=f"{text}, trained once")
    if legend is None:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    elif legend == "outside":
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif ax.lines:
        ax.legend(fontsize=7, loc=legend)
    return ax
