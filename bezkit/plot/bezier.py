"""Bezier curves: one curve with its tangent and endpoint target, many training curves at once,
and the regression targets a student sees on them (Bezier distillation, lessons 03 and 04).

Every function draws into the ``ax`` it is given, or into a new figure when ``ax`` is None, and
returns the :class:`~matplotlib.axes.Axes` it drew on.
"""

from __future__ import annotations

from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from bezkit.arrays import as_points2d, subsample
from bezkit.paths.bezier import BezierPath
from bezkit.paths.geometry import bezier_geometry
from bezkit.paths.targets import TargetKind, regression_target
from bezkit.plot.style import COLORS, finish_axes, new_axes, place_legend

__all__ = ["bezier_path_for", "pair_parts", "plot_bezier", "plot_bezier_pairs", "plot_targets"]


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
    ax = new_axes(ax)
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
    ax.scatter(cp[0, 0], cp[0, 1], color=COLORS["source"], zorder=4, s=30)
    ax.scatter(cp[-1, 0], cp[-1, 1], color=COLORS["target"], zorder=4, s=30)
    if t is not None:
        p, rem = geo.point, 1.0 - geo.t
        ax.scatter(p[0], p[1], color="black", zorder=5, s=25, label="$B(t)$ at this $t$")
        arrows = []
        if show_tangent:
            arrows.append((geo.tangent, COLORS["tangent"], "$(1-t)\\times$ tangent $B'(t)$"))
        if show_endpoint_target:
            arrows.append(
                (geo.endpoint_velocity, COLORS["endpoint"], "$(1-t)\\times$ endpoint target")
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
    place_legend(ax, where="below")
    finish_axes(ax, title, None)
    return ax


def pair_parts(pairs: Any) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(x0, x1, guides)`` as float64 tensors from a :class:`~bezkit.couplings.Pairs`, a
    :class:`~bezkit.couplings.PairPool` or a tuple ``(x0, x1, guide, ...)``."""
    pairs = getattr(pairs, "pairs", pairs)  # a PairPool holds its Pairs
    if hasattr(pairs, "x0") and hasattr(pairs, "x1"):
        parts = (pairs.x0, pairs.x1, *getattr(pairs, "guides", ()))
    else:
        parts = tuple(pairs)
    if len(parts) < 2:
        raise ValueError("pairs need at least x0 and x1")
    x0 = torch.as_tensor(as_points2d(parts[0], "x0"))
    x1 = torch.as_tensor(as_points2d(parts[1], "x1"))
    guides = tuple(
        torch.as_tensor(as_points2d(g, f"guide {i + 1}")) for i, g in enumerate(parts[2:])
    )
    for name, arr in (("x1", x1), *((f"guide {i + 1}", g) for i, g in enumerate(guides))):
        if arr.shape != x0.shape:
            raise ValueError(f"{name} has shape {tuple(arr.shape)}, x0 has {tuple(x0.shape)}")
    return x0, x1, guides


def bezier_path_for(order: int | None, guides: tuple[torch.Tensor, ...]) -> BezierPath:
    """The :class:`~bezkit.paths.BezierPath` of ``order`` (default: number of guides + 1), checked
    against the number of guides a pair holds."""
    order = len(guides) + 1 if order is None else int(order)
    if order - 1 != len(guides):
        raise ValueError(
            f"a Bezier curve of order {order} needs {order - 1} guide(s), got {len(guides)}"
        )
    return BezierPath(order)


def _drawn_pairs(
    pairs: Any, order: int | None, max_pairs: int | None, seed: int
) -> tuple[BezierPath, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """The path of ``order`` and the ``max_pairs`` pairs (a seeded subsample) a figure draws:
    ``(path, x0, x1, guides)``."""
    x0, x1, guides = pair_parts(pairs)
    path = bezier_path_for(order, guides)
    idx = torch.as_tensor(subsample(x0.shape[0], max_pairs, seed))
    return path, x0[idx], x1[idx], tuple(g[idx] for g in guides)


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
    path, x0, x1, guides = _drawn_pairs(pairs, order, max_pairs, seed)
    ax = new_axes(ax)
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
    place_legend(ax, where="below")
    ax.autoscale_view()
    finish_axes(ax, title, lim)
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
    path, x0, x1, guides = _drawn_pairs(pairs, order, max_pairs, seed)
    ax = new_axes(ax)
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
    drawn: dict[str, tuple[TargetKind, ...]] = {
        "tangent": ("tangent",),
        "endpoint": ("endpoint",),
        "both": ("tangent", "endpoint"),
    }
    kinds = drawn[target]
    for kind in kinds:
        v = regression_target(sample, kind).numpy() * rem
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
    place_legend(
        ax, where="below", handles=[handles[i] for i in keep], labels=[labels[i] for i in keep]
    )
    ax.autoscale_view()
    finish_axes(ax, title, lim)
    return ax
