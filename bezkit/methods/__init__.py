"""The methods of METHODS.md section 4, each a small recipe over the shared core.

- ``train_flow``: 1-RF (independent), OT-CFM (minibatch OT), full-OT-map flow, any coupling.
- ``reflow_round``: the k-RF from the (k-1)-RF's pairs.
- ``distill``: k-RF + distill, one-step or N-step.
- ``bezier_distill``: quadratic / cubic / any-order Bezier distillation, one or several teachers.
- ``bdense_distill``: B-DENSE, K-branch dense trajectory distillation.

One contract for all (``bezkit.methods.result``): ``recipe(teacher(s) or model, data, train,
method_config, *, progress=..., resume_from=..., checkpoint_metadata=...) -> RecipeResult``, with
``RecipeResult.model`` the model to sample with (EMA when EMA was used), ``raw_model`` and
``ema_model`` named explicitly.
"""

from bezkit.methods.bdense import (
    BDenseConfig,
    BDenseLoss,
    bdense_distill,
    bdense_train,
    branched_from_teacher,
    make_trajectory_pool,
)
from bezkit.methods.bezier_distillation import (
    BezierDistillConfig,
    bezier_distill,
    make_bezier_pairs,
)
from bezkit.methods.distillation import DistillConfig, distill
from bezkit.methods.flow import FlowConfig, new_mlp, student_from, train_flow
from bezkit.methods.reflow import ReflowConfig, reflow_round
from bezkit.methods.result import RecipeResult

__all__ = [
    "BDenseConfig",
    "BDenseLoss",
    "BezierDistillConfig",
    "DistillConfig",
    "FlowConfig",
    "RecipeResult",
    "ReflowConfig",
    "bdense_distill",
    "bdense_train",
    "bezier_distill",
    "branched_from_teacher",
    "distill",
    "make_bezier_pairs",
    "make_trajectory_pool",
    "new_mlp",
    "reflow_round",
    "student_from",
    "train_flow",
]
