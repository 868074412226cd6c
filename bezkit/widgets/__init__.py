"""Interactive figures for the notebooks: ipywidgets controls around bezkit's figure widget.

Every builder returns a :class:`WidgetBundle`. Display it (make it a cell's last expression, or
call ``display(bundle)``) to get the live widget in Jupyter; in a test, set a control's value and
read the figure's traces back, no kernel or browser needed::

    bundle = bezier_widget(order=2)
    bundle.controls["t"].value = 0.9
    bundle.trace("B(t)").x          # the point B(0.9), redrawn by the slider's callback

Builders:

- :func:`bezier_widget`: drag the control points of a quadratic or cubic curve with the mouse (or
  its sliders) and move ``t``: the curve, its control polygon, the tangent ``B'(t)``, the endpoint
  target ``(X1 - B(t)) / (1 - t)`` and, optionally, the degree-elevated polygon are redrawn.
- :func:`reflow_widget`: a slider over the reflow round ``k`` shows that round's trajectories, the
  straight chords ``Z0 -> Z1`` (the next round's pairs) and its crossing count and straightness.
  It takes precomputed per-round data (:func:`trajectory_summary`), so moving the slider is cheap.
- :func:`chains_widget`: pick the reflow chains, a metric and a round k of the experiment's
  results: means with their 95% intervals across rounds and paired differences at round k.
- :func:`steps_widget`: a slider over the number of solver steps: samples, W2 to held-out data
  (with the noise floor) and the NFE. Each update integrates the ODE and solves an OT problem, so
  the slider only updates on release (``continuous_update=False``) and results are cached.

No control value inside a slider's range raises: ``t = 1``, guides at the slider limits, both ends
of ``k``, one solver step. Numerical failures (a model returning NaN) are shown in the readout.
Colours are those of :data:`bezkit.plot.COLORS`. The figure is a plotly ``go.Figure`` drawn in the
browser by :class:`~bezkit.widgets.canvas.Canvas` (a small anywidget: SVG from synced traits, one
per trace; its first render shows the data whenever its module loads, and a change sends only the
traces that changed). Traces are changed through :func:`~bezkit.widgets.base.update_traces`.
Tested in JupyterLab 4 and Notebook 7 (docs/BROWSER_TEST.md); static viewers show no widget.

One module per lesson family: :mod:`~bezkit.widgets.base` (the bundle every builder returns), :mod:`~bezkit.widgets.canvas`
(the figure widget), :mod:`~bezkit.widgets.drag` (draggable points),
:mod:`~bezkit.widgets.bezier` (lesson 03), :mod:`~bezkit.widgets.reflow` (lesson 02),
:mod:`~bezkit.widgets.steps` (lessons 01 and 04; one builder, :func:`solver_steps_widget`),
:mod:`~bezkit.widgets.guides` and :mod:`~bezkit.widgets.student` (lesson 04),
:mod:`~bezkit.widgets.bdense` (lesson 06), :mod:`~bezkit.widgets.chains` and
:mod:`~bezkit.widgets.results` (lesson 05; their interval panels: :mod:`~bezkit.widgets.intervals`).
"""

try:
    import anywidget  # noqa: F401  (the front ends of Canvas and DragPoints)
    import ipywidgets  # noqa: F401
    import plotly  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "bezkit.widgets needs ipywidgets, plotly and anywidget: pip install 'bezkit[notebooks]'"
    ) from err

from bezkit.widgets.base import WidgetBundle
from bezkit.widgets.bdense import bdense_widget
from bezkit.widgets.bezier import DEFAULT_CONTROL_POINTS, bezier_widget
from bezkit.widgets.chains import chains_widget
from bezkit.widgets.guides import guide_widget
from bezkit.widgets.reflow import reflow_widget, trajectory_summary
from bezkit.widgets.results import error_accumulation_widget
from bezkit.widgets.steps import compare_steps_widget, solver_steps_widget, steps_widget
from bezkit.widgets.student import student_widget

__all__ = [
    "DEFAULT_CONTROL_POINTS",
    "WidgetBundle",
    "bdense_widget",
    "bezier_widget",
    "chains_widget",
    "compare_steps_widget",
    "error_accumulation_widget",
    "guide_widget",
    "reflow_widget",
    "solver_steps_widget",
    "steps_widget",
    "student_widget",
    "trajectory_summary",
]
