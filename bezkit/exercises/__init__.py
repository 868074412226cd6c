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
from bezkit.exercises.questions import QUESTIONS, Question, check_prediction, show_question
from bezkit.exercises.result import CheckResult, Verdict
from bezkit.exercises.tables import PRACTICE_TABLES, check_best_at, check_worse_with_more_steps

__all__ = [
    "CROSSING_CASES",
    "PRACTICE_TABLES",
    "QUESTIONS",
    "CheckResult",
    "ImageVelocity",
    "Question",
    "TimeVelocity",
    "Verdict",
    "bezier_point",
    "bezier_tangent",
    "branch_states",
    "check_best_at",
    "check_bezier_tangent",
    "check_branch_states",
    "check_degree_elevation",
    "check_endpoint_target",
    "check_euler_sample",
    "check_first_better_round",
    "check_hop_times",
    "check_interpolated_guide",
    "check_linear_path",
    "check_one_step",
    "check_paired_interval",
    "check_prediction",
    "check_reflow_pairs",
    "check_segments_cross",
    "check_to_pixels",
    "check_verdict",
    "check_worse_with_more_steps",
    "degree_elevate",
    "endpoint_target",
    "first_better_round",
    "hop_times",
    "interpolated_guide",
    "show_question",
    "verdict",
]
