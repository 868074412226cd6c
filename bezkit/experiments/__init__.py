"""The 2D error-accumulation experiment (``bezkit experiment``)."""

from bezkit.experiments.config import (
    ABLATIONS,
    DEFAULT_METHODS,
    KNOWN_METHODS,
    ExperimentConfig,
)
from bezkit.experiments.evaluate import evaluate_flow, evaluate_pairs
from bezkit.experiments.report import error_accumulation_table, markdown_report
from bezkit.experiments.run import machine_info, run_experiment
from bezkit.experiments.toy2d import run_experiment_pairs, run_pair

__all__ = [
    "ABLATIONS",
    "DEFAULT_METHODS",
    "KNOWN_METHODS",
    "ExperimentConfig",
    "error_accumulation_table",
    "evaluate_flow",
    "evaluate_pairs",
    "machine_info",
    "markdown_report",
    "run_experiment",
    "run_experiment_pairs",
    "run_pair",
]
