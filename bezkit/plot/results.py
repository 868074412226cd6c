"""The experiment's numbers: a metric against the reflow round ``k``, W2 against the number of
sampling steps, and the error-accumulation figure of the 2D experiment's ``results.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes

from bezkit.plot.style import COLORS, new_axes

__all__ = ["plot_error_accumulation", "plot_metric_vs_k", "plot_w2_vs_steps"]


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
    ax = new_axes(ax, (5.0, 3.5))
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
    ax = new_axes(ax, (5.0, 3.5))
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
