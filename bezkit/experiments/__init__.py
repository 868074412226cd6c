"""The 2D error-accumulation experiment (``bezkit experiment``)."""

from bezkit.experiments.config import CHAIN_KINDS, ExperimentConfig
from bezkit.experiments.protocol import (
    BASELINE_METHODS,
    DEFAULT_STUDENTS,
    EXTRA_STUDENTS,
    FULL_STUDENTS,
    SECANT_STUDENTS,
    STUDENTS,
    StudentSpec,
)
from bezkit.experiments.run import (
    ExperimentInterrupted,
    lesson_config,
    lesson_results,
    machine_info,
    quick_results,
    resume_experiment,
    rewrite_report,
    run_experiment,
)
from bezkit.experiments.toy2d import run_experiment_pairs, run_pair

__all__ = [
    "BASELINE_METHODS",
    "CHAIN_KINDS",
    "DEFAULT_STUDENTS",
    "EXTRA_STUDENTS",
    "FULL_STUDENTS",
    "SECANT_STUDENTS",
    "STUDENTS",
    "ExperimentConfig",
    "ExperimentInterrupted",
    "StudentSpec",
    "lesson_config",
    "lesson_results",
    "machine_info",
    "quick_results",
    "resume_experiment",
    "rewrite_report",
    "run_experiment",
    "run_experiment_pairs",
    "run_pair",
]
