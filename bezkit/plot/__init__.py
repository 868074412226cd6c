"""Static figures (matplotlib) for the notebooks and the experiment report.

Every function draws into the ``ax`` it is given, or into a new figure when ``ax`` is None, and
returns the :class:`~matplotlib.axes.Axes` it drew on (``ax.figure`` is the figure). Nothing here
chooses a matplotlib backend: in Jupyter the inline backend shows the figure, in tests and scripts
set ``MPLBACKEND=Agg`` (or call ``matplotlib.use("Agg")`` yourself) before the first figure.

Inputs may be torch tensors, numpy arrays or nested lists; subsampling is seeded, so the same call
draws the same figure. Colours are shared with :mod:`bezkit.widgets` through :data:`COLORS`:
source samples blue, targets orange, generated samples green, crossing segments red.

One module per family of figures:

- :mod:`bezkit.plot.style`: :data:`COLORS`, :func:`use_style` (sizes and fonts of every lesson
  figure), legends off the data, robust axis limits;
- :mod:`bezkit.plot.trajectories`: samples, trajectories, a coupling's segments (lessons 01, 02);
- :mod:`bezkit.plot.bezier`: Bezier curves, training curves and targets (lessons 03, 04);
- :mod:`bezkit.plot.bdense`: B-DENSE branches (lesson 06);
- :mod:`bezkit.plot.training`: loss curves;
- :mod:`bezkit.plot.results`: the experiment's numbers (lesson 05, the report).

The maths these figures show lives with the maths and is re-exported here for the notebooks:
:func:`segment_crossings` and :func:`crossing_mask` (:mod:`bezkit.metrics.crossings`),
:func:`bezier_geometry` and :func:`degree_elevate` (:mod:`bezkit.paths.geometry`),
:func:`branch_errors` (:mod:`bezkit.metrics.branches`).
"""

from bezkit.arrays import subsample, to_numpy
from bezkit.metrics.branches import branch_errors
from bezkit.metrics.crossings import SegmentCrossings, crossing_mask, segment_crossings
from bezkit.paths.geometry import BezierGeometry, bezier_geometry, degree_elevate
from bezkit.plot.bdense import plot_branches
from bezkit.plot.bezier import plot_bezier, plot_bezier_pairs, plot_targets
from bezkit.plot.results import (
    plot_few_step,
    plot_intervals_by_k,
    plot_metric_vs_k,
    plot_paired_differences,
    plot_w2_vs_steps,
)
from bezkit.plot.style import (
    COLORS,
    MODE_COLORS,
    place_legend,
    robust_limits,
    shared_legend,
    style_context,
    use_style,
)
from bezkit.plot.training import plot_loss
from bezkit.plot.trajectories import (
    plot_coupling_segments,
    plot_samples,
    plot_trajectories,
    source_modes,
)

__all__ = [
    "COLORS",
    "MODE_COLORS",
    "BezierGeometry",
    "SegmentCrossings",
    "bezier_geometry",
    "branch_errors",
    "crossing_mask",
    "degree_elevate",
    "place_legend",
    "plot_bezier",
    "plot_bezier_pairs",
    "plot_branches",
    "plot_coupling_segments",
    "plot_few_step",
    "plot_intervals_by_k",
    "plot_loss",
    "plot_metric_vs_k",
    "plot_paired_differences",
    "plot_samples",
    "plot_targets",
    "plot_trajectories",
    "plot_w2_vs_steps",
    "robust_limits",
    "segment_crossings",
    "shared_legend",
    "source_modes",
    "style_context",
    "subsample",
    "to_numpy",
    "use_style",
]
