"""Exercise checks for the lessons: each returns a :class:`CheckResult` that says what is wrong.

A lesson's exercise cell defines a function (the solution in the project's notebooks, a stub that
raises :class:`NotImplementedError` in the student versions written by
:func:`bezkit.course.write_student_versions`); the next cell passes it to a check. A stub gives
*not implemented yet*, a wrong answer a message naming the expected value and the likely mistake.
"""

from bezkit.exercises.bdense import branch_states, check_branch_states, check_hop_times, hop_times
from bezkit.exercises.bezier import (
    bezier_point,
    bezier_tangent,
    check_bezier_tangent,
    check_degree_elevation,
    check_endpoint_target,
    check_interpolated_guide,
    degree_elevate,
    endpoint_target,
    interpolated_guide,
)
from bezkit.exercises.chains import (
    check_first_better_round,
    check_paired_interval,
    check_verdict,
    first_better_round,
    verdict,
)
from bezkit.exercises.crossings import CROSSING_CASES, check_segments_cross
from bezkit.exercises.flows import (
    TimeVelocity,
    check_euler_sample,
    check_linear_path,
    check_reflow_pairs,
)
from bezkit.exercises.images import ImageVelocity, check_one_step, check_to_pixels
from bezkit.exercises.multiple_comparisons import check_holm, holm, p_value
from bezkit.exercises.probes import ProbeBranches, ProbeVelocity
from bezkit.exercises.questions import QUESTIONS, Question, check_prediction, show_question
from bezkit.exercises.result import CheckResult, Verdict
from bezkit.exercises.sliced import check_sliced_w2, sliced_w2, unit_directions
from bezkit.exercises.tables import PRACTICE_TABLES, check_best_at, check_worse_with_more_steps
from bezkit.exercises.targets import (
    bdense_loss,
    bezier_distill_loss,
    check_bdense_loss,
    check_bezier_distill_loss,
    check_secant_target,
    secant_target,
)
from bezkit.exercises.training import (
    check_count_crossings,
    check_fm_loss,
    check_train_step,
    fm_loss,
)

__all__ = [
    "CROSSING_CASES",
    "PRACTICE_TABLES",
    "QUESTIONS",
    "CheckResult",
    "ImageVelocity",
    "ProbeBranches",
    "ProbeVelocity",
    "Question",
    "TimeVelocity",
    "Verdict",
    "bdense_loss",
    "bezier_distill_loss",
    "bezier_point",
    "bezier_tangent",
    "branch_states",
    "check_bdense_loss",
    "check_best_at",
    "check_bezier_distill_loss",
    "check_bezier_tangent",
    "check_branch_states",
    "check_count_crossings",
    "check_degree_elevation",
    "check_endpoint_target",
    "check_euler_sample",
    "check_first_better_round",
    "check_fm_loss",
    "check_holm",
    "check_hop_times",
    "check_interpolated_guide",
    "check_linear_path",
    "check_one_step",
    "check_paired_interval",
    "check_prediction",
    "check_reflow_pairs",
    "check_secant_target",
    "check_segments_cross",
    "check_sliced_w2",
    "check_to_pixels",
    "check_train_step",
    "check_verdict",
    "check_worse_with_more_steps",
    "degree_elevate",
    "endpoint_target",
    "first_better_round",
    "fm_loss",
    "holm",
    "hop_times",
    "interpolated_guide",
    "p_value",
    "secant_target",
    "show_question",
    "sliced_w2",
    "unit_directions",
    "verdict",
]
