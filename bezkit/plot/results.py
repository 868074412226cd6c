"""The experiment's numbers: a metric against the reflow round ``k``, W2 against the number of
sampling steps, and the figures of the 2D experiment's ``results.json``: a chain field across
rounds with 95% interval bands, paired differences with error bars, the few-step comparison at
equal NFE (every :class:`~bezkit.experiments.statistics.Interval` drawn as mean and interval)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from bezkit.plot.style import COLORS, new_axes, place_legend

if TYPE_CHECKING:  # the figures draw anything with mean / low / high / excludes_zero()
    from bezkit.experiments.statistics import Interval

__all__ = [
    "LegendLocation",
    "plot_few_step",
    "plot_intervals_by_k",
    "plot_metric_vs_k",
    "plot_paired_differences",
    "plot_w2_vs_steps",
]

#: Where :func:`plot_intervals_by_k` puts its legend inside the axes (matplotlib's ``loc`` names).
LegendLocation = Literal[
    "best",
    "upper right",
    "upper left",
    "lower left",
    "lower right",
    "right",
    "center left",
    "center right",
    "lower center",
    "upper center",
    "center",
]


def _integer_ticks(ax: Axes) -> None:
    """Only integer ticks on the x axis (the rounds ``k``), with the default tick spacing."""
    locator = ax.xaxis.get_major_locator()
    if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
        locator.set_params(integer=True)


def _series(values: Mapping[Any, float] | Sequence[float], start: int = 1) -> tuple[list, list]:
    """``{x: y}`` (keys may be numeric strings, as in JSON), or ``[y, ...]`` at x = start, ..."""
    if isinstance(values, Mapping):
        items = sorted((float(k), float(v)) for k, v in values.items())
        xs = [int(x) if float(x).is_integer() else x for x, _ in items]
        return xs, [y for _, y in items]
    ys = [float(v) for v in values]
    return list(range(start, start + len(ys))), ys


def _lines(ax: Axes, series: Mapping[Any, Any]) -> None:
    """One line with markers per entry of ``{name: {x: y} or [y for x = 1, 2, ...]}``, coloured
    C0, C1, ... in order."""
    for i, (name, vals) in enumerate(series.items()):
        xs, ys = _series(vals)
        ax.plot(xs, ys, "-o", color=f"C{i}", label=name, ms=4)


#: Marker shapes of :func:`plot_w2_vs_steps` without lines, one per series (colour and shape).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def _markers(ax: Axes, series: Mapping[Any, Any], *, logx: bool) -> None:
    """Markers only, at the measured x of each series, dodged sideways so that series do not hide
    each other (by a fraction of an octave on a log axis); ticks at the measured x."""
    n = len(series)
    measured: set[Any] = set()
    for i, (name, vals) in enumerate(series.items()):
        xs, ys = _series(vals)
        measured.update(xs)
        shift = (i - (n - 1) / 2) * min(0.06, 0.4 / max(n, 1))
        dodged = [x * 2**shift for x in xs] if logx else [x + shift for x in xs]
        marker = MARKERS[i % len(MARKERS)]
        ax.plot(dodged, ys, linestyle="none", marker=marker, color=f"C{i}", label=name, ms=6)
    ticks = sorted(measured)
    ax.set_xticks(ticks, [str(x) for x in ticks])


def _reference_line(ax: Axes, value: float | None, label: str) -> None:
    """A dashed horizontal line at ``value`` (e.g. the W2 noise floor); nothing when ``None``."""
    if value is not None:
        ax.axhline(value, ls="--", color=COLORS["floor"], lw=1, label=label)


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
    _lines(ax, results)
    _reference_line(ax, reference, reference_label)
    ax.set_xlabel("reflow round $k$")
    ax.set_ylabel(metric)
    _integer_ticks(ax)
    if logy:
        ax.set_yscale("log")
    if results or reference is not None:
        ax.legend()
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
    connect: bool = True,
    legend: str = "inside",
) -> Axes:
    """W2 against the number of sampling steps, one line per model, with the noise floor.

    ``results`` is ``{label: {steps: w2}}`` (keys may be strings, as in ``results.json``) or a
    single ``{steps: w2}``. ``connect=False`` draws markers only, where a value was measured (a
    line between 4 and 16 steps would suggest values nobody measured), each series with its own
    shape, dodged sideways. ``legend``: ``"inside"`` (matplotlib's best corner), ``"right"`` or
    ``"below"`` the axes (:func:`~bezkit.plot.style.place_legend`).
    """
    ax = new_axes(ax, (5.0, 3.5))
    series: Mapping[Any, Any] = results
    if results and not isinstance(next(iter(results.values())), Mapping):
        series = {"W2": results}
    if logx:
        ax.set_xscale("log", base=2)
    if connect:
        _lines(ax, series)
    else:
        _markers(ax, series, logx=logx)
    _reference_line(ax, noise_floor, "noise floor")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("$W_2$ to held-out data")
    if results or noise_floor is not None:
        place_legend(ax, where=legend)
    if title:
        ax.set_title(title)
    return ax


def plot_intervals_by_k(
    series: Mapping[str, Mapping[int, Interval]],
    *,
    ax: Axes | None = None,
    ylabel: str = "W2",
    reference: float | None = None,
    reference_label: str = "noise floor",
    title: str | None = None,
    legend: LegendLocation | None = "best",
) -> Axes:
    """``{name: {k: Interval}}`` against the round ``k``: the mean as a line, the 95% interval
    over seeds as a shaded band, one colour per series; ``reference`` as a dashed line."""
    ax = new_axes(ax, (5.0, 3.5))
    for i, (name, by_k) in enumerate(series.items()):
        ks = sorted(by_k)
        mean = [by_k[k].mean for k in ks]
        ax.plot(ks, mean, "-o", color=f"C{i}", label=name, ms=4)
        ax.fill_between(
            ks, [by_k[k].low for k in ks], [by_k[k].high for k in ks], color=f"C{i}", alpha=0.2
        )
    _reference_line(ax, reference, reference_label)
    ax.set_xlabel("round $k$")
    ax.set_ylabel(ylabel)
    _integer_ticks(ax)
    if title:
        ax.set_title(title)
    if legend and (series or reference is not None):
        ax.legend(loc=legend)
    return ax


def plot_paired_differences(
    diffs: Mapping[str, Interval],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str = "W2 difference (negative = better; filled: interval excludes 0)",
) -> Axes:
    """One row per comparison: the mean difference and its 95% interval as an error bar, a line
    at zero. Rows whose interval excludes zero are drawn solid, the others hollow."""
    ax = new_axes(ax, (6.0, 0.4 * max(len(diffs), 3) + 1.0))
    names = list(diffs)
    for y, name in enumerate(names):
        iv = diffs[name]
        solid = iv.excludes_zero()
        color = "C3" if solid and iv.mean > 0 else ("C2" if solid else "C7")
        ax.errorbar(
            iv.mean,
            y,
            xerr=[[iv.mean - iv.low], [iv.high - iv.mean]],
            fmt="o",
            color=color,
            mfc=color if solid else "white",
            capsize=3,
        )
    ax.axvline(0.0, color=COLORS["floor"], lw=1)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return ax


def plot_few_step(
    series: Mapping[str, Mapping[int, Interval]],
    *,
    ax: Axes | None = None,
    reference: float | None = None,
    title: str | None = None,
) -> Axes:
    """W2 against NFE for students each made for its NFE (``{family: {NFE: Interval}}``), error
    bars = 95% intervals over seeds; points slightly offset per family so the bars stay legible;
    the legend stands beside the axes (leave room: a wide figure, ``tight_layout``)."""
    ax = new_axes(ax, (6.0, 4.0))
    n = max(len(series), 1)
    for i, (name, pts) in enumerate(series.items()):
        xs = sorted(pts)
        shift = 1.0 + 0.04 * (i - (n - 1) / 2)
        ax.errorbar(
            [x * shift for x in xs],
            [pts[x].mean for x in xs],
            yerr=[[pts[x].mean - pts[x].low for x in xs], [pts[x].high - pts[x].mean for x in xs]],
            fmt="-o",
            color=f"C{i}",
            ms=4,
            capsize=3,
            label=name,
        )
    if reference is not None:
        ax.axhline(reference, ls="--", color=COLORS["floor"], lw=1, label="noise floor")
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4], ["1", "2", "4"])
    ax.set_xlabel("NFE (Euler steps the student is made for)")
    ax.set_ylabel("$W_2$ to held-out data")
    if title:
        ax.set_title(title)
    if series:  # beside the data: eight series and their error bars leave no empty corner
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return ax
