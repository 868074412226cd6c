"""student_widget (lesson 04), headless with tiny step counts: the button trains a student on the
guide widget's current curve family, caches it, and draws its trajectories and W2 beside the
teacher's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from bezkit.data import get_sampler
from bezkit.metrics.wasserstein import wasserstein2
from bezkit.models import MLPVelocity
from bezkit.solvers.ode import solve_ode
from bezkit.widgets import guide_widget, student_widget
from bezkit.widgets.student import few_step_w2


def _teacher() -> MLPVelocity:
    torch.manual_seed(0)
    return MLPVelocity(2, hidden=16, depth=2, time_dim=8)


def _bundles(**kwargs):
    src, tgt = get_sampler("8gaussians"), get_sampler("moons")
    teacher = _teacher()
    g = torch.Generator().manual_seed(0)
    x0, x1 = src.sample(16, g), tgt.sample(16, g)
    guides = guide_widget(teacher, x0, x1, max_pairs=6, teacher_steps=10)
    opts = dict(n_eval=64, n_pairs=64, train_steps=3, batch_size=32, steps=(1, 2), m_paths=5)
    opts.update(kwargs)
    return guides, student_widget(guides, src, tgt, progress=False, **opts), teacher


def test_few_step_w2_is_the_w2_of_euler_samples():
    teacher = _teacher()
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    ref = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    got = few_step_w2(teacher, x0, ref, (1, 3))
    with torch.no_grad():
        want = wasserstein2(solve_ode(teacher, x0, steps=3).x, ref)
    assert set(got) == {1, 3} and got[3] == pytest.approx(want)


def test_the_teacher_is_drawn_before_any_training():
    _, b, _ = _bundles()
    assert set(b.state["teacher_w2"]) == {1, 2}
    assert list(b.trace("W2 teacher").y) == list(b.state["teacher_w2"].values())
    assert len(b.trace("student paths").x or ()) == 0
    assert "press the button" in b.readout.value


def test_the_button_trains_on_the_guide_widgets_choice_and_caches_it():
    guides, b, teacher = _bundles()
    guides.controls["s"].value = 0.3
    guides.controls["placement"].value = "interpolate"
    b.controls["train"].click()
    (name,) = b.state["students"]
    rec = b.state["students"][name]
    cfg = rec["config"]
    assert cfg.guide_times == (0.3,) and cfg.placement == "interpolate" and cfg.order == 2
    assert "s = 0.30, interpolate guide" in b.readout.value
    assert list(b.trace("W2 student").x) == [1, 2]
    assert all(math.isfinite(v) for v in rec["w2"].values())
    assert list(b.trace("W2 student").y) == list(rec["w2"].values())
    # the student is a trained copy: the teacher is untouched, the student moved
    assert rec["model"] is not teacher
    x = torch.randn(8, 2)
    t = torch.zeros(8)
    with torch.no_grad():
        assert not torch.allclose(rec["model"](x, t), teacher(x, t))
    paths = b.trace("student paths")
    assert sum(v is None for v in paths.x) == 5  # m_paths polylines
    # the same choice again: cached, nothing retrained
    model = rec["model"]
    b.controls["train"].click()
    assert b.state["students"][name]["model"] is model
    # a new choice: a second student, the first drawn as an earlier one
    guides.controls["target"].value = "tangent"
    b.controls["train"].click()
    assert len(b.state["students"]) == 2 and "tangent target" in b.state["current"]
    earlier = [v for v in b.trace("W2 earlier students").y if v is not None]
    np.testing.assert_allclose(earlier, list(rec["w2"].values()))
    assert b.controls["train"].disabled is False


def test_student_widget_needs_a_guide_widget_and_valid_counts():
    guides, _, _ = _bundles()
    src, tgt = get_sampler("8gaussians"), get_sampler("moons")
    with pytest.raises(ValueError, match="guide_widget"):
        student_widget(
            guides.__class__(
                box=guides.box, figure=guides.figure, controls={}, readout=guides.readout
            ),
            src,
            tgt,
        )
    with pytest.raises(ValueError, match="steps"):
        student_widget(guides, src, tgt, steps=(0,))
